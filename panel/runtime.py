"""Wiring: from settings to a ready panel (personas, prompts, store, providers, reviewer).

Commands open a Runtime, use it, and close it; nothing here talks to a model by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from panel.cards import ToolCard
from panel.config import Settings
from panel.errors import ProviderError
from panel.personas import Persona, load_personas, with_models
from panel.prompts import Prompts
from panel.providers import make_provider
from panel.review import Reviewer, review_tool
from panel.spending import Spending
from panel.store import Store, StoredReview


@dataclass
class Runtime:
    settings: Settings
    personas: list[Persona]
    prompts: Prompts
    store: Store
    reviewer: Reviewer

    async def review(
        self,
        card: ToolCard,
        *,
        fresh: bool = False,
        on_done: Callable[[str], None] | None = None,
        personas: list[Persona] | None = None,
    ) -> tuple[list[StoredReview], dict[str, ProviderError]]:
        """Return the panel's reviews of card (cached ones reused unless fresh).

        `personas` narrows the panel, e.g. to the personas a stored review set lacks.
        """
        return await review_tool(
            self.reviewer,
            card,
            self.personas if personas is None else personas,
            concurrency=self.settings.concurrency,
            fresh=fresh,
            on_done=on_done,
        )

    async def close_providers(self) -> None:
        for provider in self.reviewer.providers.values():
            await provider.aclose()

    async def aclose(self) -> None:
        await self.close_providers()
        self.store.close()


def open_runtime(
    settings: Settings,
    only: list[str] | None = None,
    *,
    personas: list[Persona] | None = None,
    store: Store | None = None,
) -> Runtime:
    """Load personas and prompts, open the store and make every provider the panel needs.

    `personas` and `store` reuse what a command already loaded or opened.
    """
    personas = personas if personas is not None else load_personas(settings.personas_dir(), only)
    personas = with_models(personas, settings.persona_model)
    prompts = Prompts(settings.prompts_dir())
    for persona in personas:
        _ = persona.answer_model  # fail on a broken persona before any call
    names = {settings.provider} | {p.provider for p in personas if p.provider}
    opened = store is None
    store = store or Store(settings.db)
    try:
        providers = {
            name: make_provider(_for(settings, name), name, store) for name in sorted(names)
        }
    except BaseException:
        if opened:
            store.close()
        raise
    reviewer = Reviewer(
        providers=providers,
        default=settings.provider,
        default_model=settings.model,
        prompts=prompts,
        store=store,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        seed=settings.seed,
        max_attempts=settings.max_attempts,
        samples=settings.samples,
        spending=Spending(max_usd=settings.max_cost),
    )
    return Runtime(settings, personas, prompts, store, reviewer)


def _for(settings: Settings, provider: str) -> Settings:
    """Return the settings a provider is made with: --model and --base-url belong to the run's
    own provider; another provider a persona names gets its own default model and endpoint."""
    if provider == settings.provider:
        return settings
    own = settings.model_copy(update={"model": None, "base_url": None})
    own._base_url_from_file = settings._base_url_from_file
    return own
