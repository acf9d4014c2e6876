"""The replay provider: answers only from recorded cassettes, never from a live model.

A request with no recording fails at once with a ReplayMissError that names the tool, the
persona and the request hash, and says how to re-record.
"""

from __future__ import annotations

from pathlib import Path

from panel.config import Settings
from panel.errors import ConfigError, ProviderError
from panel.providers.base import Generation, Provider, Request
from panel.providers.cassette import cassette_path, read_answer


class ReplayMissError(ProviderError):
    """No cassette answers this request: the persona, prompt or card changed since recording."""


class ReplayProvider(Provider):
    name = "replay"
    default_model = "replay"

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ConfigError("cassettes folder not found", path=str(folder))
        self.folder = folder
        self.model = _recorded_model(folder)

    async def generate(self, request: Request) -> Generation:
        path = cassette_path(self.folder, request)
        if not path.is_file():
            raise ReplayMissError(
                f"no recording (request {path.stem.rsplit('.', 1)[-1]}) in {self.folder}: "
                "its persona, prompt or card changed since it was recorded; "
                f"re-record with `panel review <card> --record {self.folder}` "
                "(golden cases: `panel golden record <case>`)",
                provider=self.name,
                tool=request.tool,
                persona=request.persona,
            )
        return read_answer(path)[1]


def _recorded_model(folder: Path) -> str:
    """Return the one model the cassettes were recorded with, or "replay" if mixed or none."""
    models = set()
    for path in folder.glob("*.json"):
        model = read_answer(path)[0].get("model")
        if not isinstance(model, str):
            raise ConfigError("not a panel cassette (request without a model)", path=str(path))
        models.add(model)
    return models.pop() if len(models) == 1 else "replay"


def create(settings: Settings) -> ReplayProvider:
    if settings.cassettes is None:
        raise ConfigError("the replay provider needs --cassettes DIR")
    return ReplayProvider(settings.cassettes)
