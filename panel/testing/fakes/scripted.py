"""A scripted fake provider: answers from a list in order, or from a function of the request."""

from __future__ import annotations

import json
from collections.abc import Callable

from panel.errors import ProviderError
from panel.providers.base import Generation, Provider, Request

from .openai import answer_for

Script = Callable[[Request], Generation | ProviderError]


class ScriptedProvider(Provider):
    """A fake provider that answers from a script: a function of the request, or a list in order."""

    name = "scripted"
    default_model = "scripted-1"
    max_concurrency = 4

    def __init__(
        self, script: Script | list[str | Generation | ProviderError] | None = None
    ) -> None:
        self.model = self.default_model
        self.script = script
        self.requests: list[Request] = []

    async def generate(self, request: Request) -> Generation:
        self.requests.append(request)
        if self.script is None:
            result: Generation | ProviderError | str = Generation(
                json.dumps(answer_for(request.schema, score=80)),
                input_tokens=4000,
                output_tokens=200,
            )
        elif callable(self.script):
            result = self.script(request)
        else:
            result = self.script.pop(0)
        if isinstance(result, ProviderError):
            raise result
        if isinstance(result, str):
            return Generation(result, input_tokens=10, output_tokens=5)
        return result

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        return (input_tokens + output_tokens) / 1_000_000
