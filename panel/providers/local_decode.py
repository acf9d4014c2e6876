"""The embedded model's decoder: llama.cpp's low-level API, driven with little Python per token.

llama-cpp-python's chat completion masks the whole 49k-token vocabulary with the grammar before
every token and feeds the model one token at a time. This decoder does what llama.cpp's own
common sampler and server do instead:

- the sampler chain is ours: the repeat penalty in numpy (the last 64 tokens written, 1.15),
  then greedy, or top-k 40 / top-p 0.95 / min-p 0.05 / temperature / a seeded draw in llama.cpp;
  the grammar checks only the token drawn, and the vocabulary is masked only when that token
  is rejected (first the 256 likeliest tokens, which decides it exactly whenever enough of
  them are allowed; the whole vocabulary otherwise). The token chosen is the one a grammar-first
  chain would choose.
- text the grammar forces (the JSON keys, the verdict that follows a score) is not sampled: it
  is appended and evaluated with the next step, as prompt.
- several answers are decoded together, one sequence each, in one batch per step; their common
  prefix (a card's shared part) is evaluated once and shared in the KV cache, and the longest
  prefix the first answer shares with what the cache already holds is reused.

Attention runs with flash attention, which skips other sequences' cells, so an answer does not
depend on what else is in its batch: for a given prompt and seed it is the same decoded alone
or with three others (tests/providers/test_local.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPEAT_PENALTY = 1.15
"""At 1.0 the 135M model loops; 1.15 is what panel has always used."""
REPEAT_WINDOW = 64
"""Tokens written that the penalty looks back over (llama-cpp-python's default)."""
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05
"""The sampling chain above temperature 0 (llama-cpp-python's defaults)."""
PROBE_TOP = 32
"""Likeliest tokens whose probabilities a probe keeps (those the grammar allows)."""
SHORTLIST = 256
"""Likeliest tokens the grammar checks before it masks the whole vocabulary."""
MAX_SEQUENCES = 4
"""Answers decoded together: a panel's four personas."""
CONTEXT = 8192
"""KV cells, a quarter for each sequence (about 188 MB for SmolLM2-135M)."""
ANSWER_ROOM = 512
"""Cells a prompt must leave for its answer (the grammar keeps answers to about 150 tokens)."""

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class DecodeError(Exception):
    """llama.cpp refused a step (no room in the KV cache, or a failed computation)."""


@dataclass
class Job:
    """One answer to decode: its prompt tokens, grammar and sampling settings."""

    prompt: list[int]
    grammar: str
    head: int = 0
    """Leading prompt tokens that are the system message (a card's part, which a panel's four
    answers share): evaluated as a chunk of their own, shared or reused whole."""
    temperature: float = 0.0
    seed: int = 7
    max_tokens: int = 1200
    abandoned: threading.Event = field(default_factory=threading.Event)
    """Set when nobody waits for the answer any more: decoding it stops."""
    probes: tuple[bytes, ...] = ()
    """Texts after which the next token's probabilities are read (a decision's key, such as
    b'"prefers": "'): the answer's alternatives there are kept (Decoded.alternatives)."""


@dataclass
class Decoded:
    """What a job gave: the text, and what it cost in tokens."""

    text: str
    prompt_tokens: int
    cached_tokens: int
    """Prompt tokens not evaluated for this job (reused from the cache or shared)."""
    output_tokens: int
    forced_tokens: int
    """Output tokens the grammar forced (evaluated as prompt, never sampled)."""
    finish_reason: str
    alternatives: list[tuple[int, list[tuple[str, float]]]] = field(default_factory=list)
    """At each probe: where the token sampled there starts in text (in characters), and the
    tokens the grammar allowed there with their probabilities (PROBE_TOP at the most)."""


@dataclass
class Stats:
    """Running totals of the decoder's work, for `make bench-local`."""

    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    steps: int = 0
    step_tokens: int = 0
    """Tokens evaluated by decoding steps (sampled ones, and forced text)."""
    step_seconds: float = 0.0
    sampled: int = 0
    forced: int = 0
    rejected: int = 0
    """Tokens drawn that the grammar refused (resampled from the allowed ones)."""
    masked: int = 0
    """Rejections that needed the whole vocabulary masked."""
    sample_seconds: float = 0.0

    def copy(self) -> Stats:
        return Stats(**vars(self))

    def since(self, before: Stats) -> Stats:
        return Stats(**{k: v - getattr(before, k) for k, v in vars(self).items()})

    def plus(self, other: Stats) -> Stats:
        return Stats(**{k: v + getattr(other, k) for k, v in vars(self).items()})


def quiet_llama() -> None:
    """Keep llama.cpp's loading chatter off the terminal (errors still show)."""
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)


class Model:
    """A GGUF model and one llama.cpp context of MAX_SEQUENCES sequences; one user at a time."""

    def __init__(self, path: Path, threads: int) -> None:
        quiet_llama()
        import llama_cpp as llama

        self._llama = llama
        self.lock = threading.Lock()
        self.stats = Stats()
        self._model = llama.llama_model_load_from_file(
            str(path).encode(), llama.llama_model_default_params()
        )
        if not self._model:
            raise ValueError(f"llama.cpp could not load {path.name}")
        self._vocab = llama.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama.llama_vocab_n_tokens(self._vocab))
        self._ctx = self._context(threads)
        self._memory = llama.llama_get_memory(self._ctx)
        self.room = int(llama.llama_n_ctx_seq(self._ctx))
        """Cells of one sequence: its prompt and its answer."""
        self._batch = llama.llama_batch_init(CONTEXT, 0, MAX_SEQUENCES)
        self._resident: list[int] = []
        """The tokens sequence 0 holds in the cache, from position 0."""
        self.eog = {t for t in range(self.n_vocab) if llama.llama_vocab_is_eog(self._vocab, t)}
        """Every token that ends a text (the grammar allows them all once it is complete)."""
        self._grammars: dict[str, Any] = {}
        self._pieces: dict[int, bytes] = {}
        self.chars = self._char_tokens()
        self._formatters: tuple[Any, Any] | None = None

    def _context(self, threads: int) -> Any:
        llama = self._llama
        params = llama.llama_context_default_params()
        params.n_ctx = CONTEXT
        params.n_batch = CONTEXT  # a whole run's prompts go in one call (llama.cpp splits it)
        params.n_ubatch = 512
        params.n_seq_max = MAX_SEQUENCES
        params.n_threads = params.n_threads_batch = threads
        # A stream of cells per sequence: attention reads only its own sequence's cells (with
        # one unified buffer, each of four sequences reads past the other three's): prompts
        # ~12% and steps ~10% faster measured; a shared system message is copied across.
        params.kv_unified = False
        params.flash_attn_type = llama.LLAMA_FLASH_ATTN_TYPE_ENABLED
        ctx = llama.llama_init_from_model(self._model, params)
        if not ctx:
            raise ValueError("llama.cpp could not create a context for this model")
        return ctx

    # --- text and tokens ------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Return the tokens of text; with special, control tokens written in it are parsed
        (a chat template writes its own BOS where the model wants one)."""
        data = text.encode("utf-8")
        room = len(data) + 16
        buffer = (self._llama.llama_token * room)()
        n = self._llama.llama_tokenize(self._vocab, data, len(data), buffer, room, False, special)
        if n < 0:
            raise DecodeError("the text does not tokenize")
        return list(buffer[:n])

    def piece(self, token: int) -> bytes:
        """Return the bytes a token stands for (control tokens as nothing)."""
        known = self._pieces.get(token)
        if known is None:
            room = 64
            while True:
                buffer = ctypes.create_string_buffer(room)
                n = self._llama.llama_token_to_piece(self._vocab, token, buffer, room, 0, False)
                if n >= 0:
                    break
                room = -n  # llama.cpp says how much room the piece needs
            known = self._pieces[token] = buffer.raw[: max(n, 0)]
        return known

    def chat_prompt(self, messages: list[dict[str, str]]) -> tuple[list[int], int]:
        """Return the tokens of messages laid out by the model's own chat template (ChatML when
        the file has none), as llama-cpp-python's chat completion lays them out, and how many
        of them are the system message's."""
        whole, alone = self._chat_formatters()
        tokens = self.tokenize(whole(messages=messages).prompt, special=True)
        if messages[0]["role"] != "system" or len(messages) < 2:
            return tokens, 0
        system = self.tokenize(alone(messages=messages[:1]).prompt, special=True)
        return tokens, min(common_length(tokens, system), len(tokens) - 1)

    def _chat_formatters(self) -> tuple[Any, Any]:
        """Return the chat template's formatter of a conversation, and of a system message alone."""
        if self._formatters is None:
            from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

            template = self._llama.llama_model_chat_template(self._model, None)
            text = template.decode("utf-8") if template else CHATML_CHAT_TEMPLATE
            eos = self._special_text(self._llama.llama_vocab_eos(self._vocab))
            bos = self._special_text(self._llama.llama_vocab_bos(self._vocab))
            self._formatters = (
                Jinja2ChatFormatter(text, eos, bos),
                Jinja2ChatFormatter(text, eos, bos, add_generation_prompt=False),
            )
        return self._formatters

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self._llama.llama_vocab_get_text(self._vocab, token)).decode(
            "utf-8", "replace"
        )

    def _char_tokens(self) -> dict[int, str]:
        """Return the tokens that are one printable ASCII character each, by token."""
        chars: dict[int, str] = {}
        for code in range(0x20, 0x7F):
            tokens = self.tokenize(chr(code), special=False)
            if len(tokens) == 1 and self.piece(tokens[0]) == chr(code).encode():
                chars[tokens[0]] = chr(code)
        return chars

    # --- grammars -------------------------------------------------------------------------------

    def grammar(self, text: str) -> Any:
        """Return a fresh grammar sampler for text (parsed once per text)."""
        llama = self._llama
        proto = self._grammars.get(text)
        if proto is None:
            proto = llama.llama_sampler_init_grammar(self._vocab, text.encode(), b"root")
            if not proto:
                raise ValueError("llama.cpp could not parse the grammar")
            if len(self._grammars) >= 32:
                llama.llama_sampler_free(self._grammars.pop(next(iter(self._grammars))))
            self._grammars[text] = proto
        return llama.llama_sampler_clone(proto)

    # --- decoding -------------------------------------------------------------------------------

    def run(self, jobs: Sequence[Job], done: Callable[[int, Decoded], None]) -> None:
        """Decode jobs (at most MAX_SEQUENCES) together; call done(index, answer) as each ends."""
        if not 0 < len(jobs) <= MAX_SEQUENCES:
            raise ValueError(f"1 to {MAX_SEQUENCES} jobs at a time")
        # Jobs go in a canonical order (by prompt): llama.cpp's CPU kernels round a row a
        # little differently by its place in a batch, so the order must not depend on which
        # request happened to arrive first.
        order = sorted(range(len(jobs)), key=lambda i: jobs[i].prompt)
        with self.lock:
            try:
                _Run(
                    self, [jobs[i] for i in order], lambda k, answer: done(order[k], answer)
                ).decode()
            except BaseException:
                self._clear()  # what the cache holds is not known any more
                raise

    def fits(self, job: Job) -> bool:
        """Whether job's prompt leaves room in its sequence for an answer."""
        return len(job.prompt) + min(job.max_tokens, ANSWER_ROOM) <= self.room

    def ceiling(self, sequences: int, steps: int = 64, prompt: int = 400) -> tuple[float, float]:
        """Return llama.cpp's own rates on this machine with no sampling: prompt tokens per
        second, and tokens per second decoding `sequences` sequences one token each per step."""
        with self.lock:
            self._clear()
            tokens = [min(1000 + i, self.n_vocab - 1) for i in range(prompt)]
            started = time.perf_counter()
            self._decode([(t, i, (0,), i == prompt - 1) for i, t in enumerate(tokens)])
            prompt_rate = prompt / (time.perf_counter() - started)
            for seq in range(1, sequences):
                self._llama.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
            started = time.perf_counter()
            for step in range(steps):
                self._decode([(tokens[step], prompt + step, (s,), True) for s in range(sequences)])
            decode_rate = sequences * steps / (time.perf_counter() - started)
            self._clear()
        return prompt_rate, decode_rate

    def _clear(self) -> None:
        self._llama.llama_memory_clear(self._memory, True)
        self._resident = []

    def _decode(self, entries: Sequence[tuple[int, int, Sequence[int], bool]]) -> None:
        """Evaluate (token, position, sequences, wants logits) entries in one llama_decode."""
        batch = self._batch
        batch.n_tokens = len(entries)
        token, pos, n_seq, seq_id, logits = (
            batch.token,
            batch.pos,
            batch.n_seq_id,
            batch.seq_id,
            batch.logits,
        )
        for i, (t, p, seqs, wants) in enumerate(entries):
            token[i] = t
            pos[i] = p
            n_seq[i] = len(seqs)
            for j, s in enumerate(seqs):
                seq_id[i][j] = s
            logits[i] = wants
        status = self._llama.llama_decode(self._ctx, batch)
        if status != 0:
            raise DecodeError(
                "no room left in the model's context"
                if status == 1
                else f"llama_decode failed ({status})"
            )

    def logits(self, index: int) -> npt.NDArray[np.float32]:
        pointer = self._llama.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class Sampler:
    """One sequence's sampler: the repeat penalty, the chain, the grammar and its forced text."""

    def __init__(self, model: Model, job: Job) -> None:
        llama = model._llama
        self._llama = llama
        self._model = model
        self.grammar = model.grammar(job.grammar)
        self.greedy = job.temperature <= 0
        self.chain = None if self.greedy else self._chain(job.temperature, job.seed)
        self.recent: deque[int] = deque(maxlen=REPEAT_WINDOW)
        n = model.n_vocab
        self._cur = np.zeros(n, dtype=_TOKEN_DATA)
        self._ids = np.arange(n, dtype=np.int32)
        self._work = np.zeros(n, dtype=np.float32)
        self._array = llama.llama_token_data_array(
            ctypes.cast(self._cur.ctypes.data, llama.llama_token_data_p), n, -1, False
        )
        chars = sorted(model.chars) + sorted(model.eog)
        self._probe_ids = np.array(chars, dtype=np.int32)
        self._probe = np.zeros(len(chars), dtype=_TOKEN_DATA)
        self._probe_array = llama.llama_token_data_array(
            ctypes.cast(self._probe.ctypes.data, llama.llama_token_data_p), len(chars), -1, False
        )

    def _chain(self, temperature: float, seed: int) -> Any:
        llama = self._llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        for sampler in (
            llama.llama_sampler_init_top_k(TOP_K),
            llama.llama_sampler_init_top_p(TOP_P, 1),
            llama.llama_sampler_init_min_p(MIN_P, 1),
            llama.llama_sampler_init_temp(temperature),
            llama.llama_sampler_init_dist(seed & 0xFFFFFFFF),
        ):
            llama.llama_sampler_chain_add(chain, sampler)
        return chain

    def close(self) -> None:
        for sampler in (self.grammar, self.chain):
            if sampler is not None:
                self._llama.llama_sampler_free(sampler)
        self.grammar = self.chain = None

    def accept(self, token: int) -> None:
        """Count a token written (sampled or forced) for the repeat penalty."""
        self.recent.append(token)

    def sample(self, logits: npt.NDArray[np.float32], stats: Stats) -> int:
        """Return the next token: drawn from the penalised logits, checked by the grammar."""
        work = self._work
        np.copyto(work, logits)
        if self.recent:
            seen = np.fromiter(set(self.recent), dtype=np.int32)
            values = work[seen]
            work[seen] = np.where(values <= 0, values * REPEAT_PENALTY, values / REPEAT_PENALTY)
        token = self._draw(work, None)
        if not self._allowed(token):
            stats.rejected += 1
            token = self._draw_allowed(work, stats)
        self._llama.llama_sampler_accept(self.grammar, token)
        return token

    def _draw(self, work: npt.NDArray[np.float32], ids: npt.NDArray[np.int32] | None) -> int:
        """Return a token drawn from work (the logits of ids, or of the whole vocabulary)."""
        if self.greedy:
            best = int(np.argmax(work))
            return best if ids is None else int(ids[best])
        size = len(work)
        cur = self._cur
        cur["id"][:size] = self._ids[:size] if ids is None else ids
        cur["logit"][:size] = work
        cur["p"][:size] = 0
        array = self._array
        array.size, array.selected, array.sorted = size, -1, False
        self._llama.llama_sampler_apply(self.chain, ctypes.byref(array))
        token = int(array.data[array.selected].id)  # a sampler may move the data
        self._llama.llama_sampler_accept(self.chain, token)
        return token

    def alternatives(self, logits: npt.NDArray[np.float32]) -> list[tuple[str, float]]:
        """Return the likeliest tokens the grammar allows now, each with its probability (the
        model's own, without the repeat penalty), renormalised over those allowed."""
        ids = np.argpartition(logits, -PROBE_TOP)[-PROBE_TOP:].astype(np.int32)
        allowed = self._mask(ids, logits[ids])
        if not len(allowed):
            return []
        values = logits[allowed].astype(np.float64)
        weights = np.exp(values - values.max())
        weights /= weights.sum()
        return [
            (self._model.piece(int(t)).decode("utf-8", "replace"), float(w))
            for t, w in sorted(zip(allowed, weights, strict=True), key=lambda x: -x[1])
        ]

    def _allowed(self, token: int) -> bool:
        one = self._probe[:1]
        one["id"], one["logit"], one["p"] = token, 0.0, 0.0
        array = self._probe_array
        array.size, array.selected, array.sorted = 1, -1, False
        self._llama.llama_sampler_apply(self.grammar, ctypes.byref(array))
        return bool(np.isfinite(one["logit"][0]))

    def _draw_allowed(self, work: npt.NDArray[np.float32], stats: Stats) -> int:
        """Return a token drawn from the allowed tokens only (the grammar-first result)."""
        ids = np.argpartition(work, -SHORTLIST)[-SHORTLIST:].astype(np.int32)
        keep = self._mask(ids, work[ids])
        enough = 1 if self.greedy else TOP_K
        if len(keep) < enough:
            stats.masked += 1
            keep = self._mask(self._ids, work)
            if not len(keep):
                raise DecodeError("the grammar allows no token here")
        return self._draw(work[keep], keep)

    def _mask(
        self, ids: npt.NDArray[np.int32], logits: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.int32]:
        """Return the ids the grammar allows now, of those given."""
        size = len(ids)
        cur = self._cur
        cur["id"][:size] = ids
        cur["logit"][:size] = logits
        array = self._array
        array.size, array.selected, array.sorted = size, -1, False
        self._llama.llama_sampler_apply(self.grammar, ctypes.byref(array))
        allowed = cur[: array.size]
        return np.asarray(allowed["id"][np.isfinite(allowed["logit"])], dtype=np.int32)

    def forced(self) -> tuple[str, bool]:
        """Return the text the grammar now forces (accepting it), and whether the answer is
        complete (nothing but the end may follow).

        A space the grammar forces last is left to the model: its tokens carry the space in
        front of a word (" It"), and a lone space token before a word is text it has rarely
        seen, so it would write worse words after it."""
        text: list[str] = []
        while True:
            allowed = self._allowed_now(self.grammar)
            if allowed and all(token in self._model.eog for token in allowed):  # the end only
                return "".join(text), True
            if len(allowed) != 1:
                return "".join(text), False
            char = self._model.chars[allowed[0]]
            if char == " " and not self._forced_after(allowed[0]):
                return "".join(text), False
            self._llama.llama_sampler_accept(self.grammar, allowed[0])
            text.append(char)

    def _allowed_now(self, grammar: Any) -> list[int]:
        """Return the character and end tokens grammar allows now."""
        probe, array = self._probe, self._probe_array
        probe["id"] = self._probe_ids
        probe["logit"] = 0.0
        array.size, array.selected, array.sorted = len(probe), -1, False
        self._llama.llama_sampler_apply(grammar, ctypes.byref(array))
        return [int(token) for token in probe["id"][np.isfinite(probe["logit"])]]

    def _forced_after(self, token: int) -> bool:
        """Return whether the grammar forces another character once token is written."""
        ahead = self._llama.llama_sampler_clone(self.grammar)
        try:
            self._llama.llama_sampler_accept(ahead, token)
            return len(self._allowed_now(ahead)) == 1
        finally:
            self._llama.llama_sampler_free(ahead)


@dataclass
class _Sequence:
    """A job under way: its sequence id, what it still has to evaluate, what it wrote."""

    index: int
    job: Job
    sampler: Sampler
    position: int
    pending: list[int]
    cached: int
    text: list[bytes] = field(default_factory=list)
    written: int = 0
    forced: int = 0
    alternatives: list[tuple[int, list[tuple[str, float]]]] = field(default_factory=list)


class _Run:
    """One call of Model.run: the jobs' prompts evaluated, then one batch per step until all end."""

    def __init__(self, model: Model, jobs: list[Job], done: Callable[[int, Decoded], None]) -> None:
        self.model = model
        self.jobs = jobs
        self.done = done
        self.stats = model.stats
        self._sampling = 0.0

    def decode(self) -> None:
        live = self._start()
        try:
            while live:
                live = self._step(live)
        finally:
            for seq in live:
                seq.sampler.close()
            self._release()

    def _start(self) -> list[_Sequence]:
        """Evaluate the jobs' prompts: each distinct system message once (none if sequence 0
        already holds the first job's), shared by the jobs that have it, then each job's own
        part in a call of its own. Return the sequences, each with its first token sampled.

        The chunks are the same whatever else is decoded and whatever the cache held before:
        llama.cpp's CPU kernels round a little differently for batches of other shapes, so
        this keeps a prompt's answer independent of what was decoded before it."""
        model, llama = self.model, self.model._llama
        first = self.jobs[0]
        head = first.prompt[: first.head]
        reused = len(head) if head and model._resident[: len(head)] == head else 0
        llama.llama_memory_seq_rm(model._memory, 0, reused, -1)
        for other in range(1, MAX_SEQUENCES):
            llama.llama_memory_seq_rm(model._memory, other, -1, -1)
        model._resident = head[:reused]
        started = time.perf_counter()
        holder: dict[tuple[int, ...], int] = {}
        sequences = []
        for index, job in enumerate(self.jobs):
            key = tuple(job.prompt[: job.head])
            if index == 0 and reused:
                cached = reused
            elif key in holder:  # another job's sequence holds this system message: share it
                llama.llama_memory_seq_cp(model._memory, holder[key], index, -1, -1)
                cached = job.head
            else:
                model._decode([(t, i, (index,), False) for i, t in enumerate(key)])
                self.stats.prompt_tokens += job.head
                cached = 0
            holder.setdefault(key, index)
            sequences.append(self._sequence(index, job, cached))
        if self.jobs[0].head and not reused:
            model._resident = list(head)
        live = [seq for seq in sequences if self._prompt(seq)]
        self.stats.prompt_seconds += time.perf_counter() - started - self._sampling
        return live

    def _sequence(self, index: int, job: Job, cached: int) -> _Sequence:
        sampler = Sampler(self.model, job)
        seq = _Sequence(index, job, sampler, job.head, list(job.prompt[job.head :]), cached)
        self._force(seq)  # the answer's opening ('{"review": "') is forced: it joins the prompt
        return seq

    def _prompt(self, seq: _Sequence) -> bool:
        """Evaluate seq's own part of the prompt and sample its first token; return whether
        it goes on."""
        self.stats.prompt_tokens += len(seq.pending)
        (row,) = self._feed([seq])
        started = time.perf_counter()
        goes_on = self._next(seq, row)
        self._sampling += time.perf_counter() - started
        return goes_on

    def _force(self, seq: _Sequence) -> bool:
        """Append what the grammar forces to seq's pending tokens; return whether it is done."""
        text, complete = seq.sampler.forced()
        if text:
            tokens = self.model.tokenize(text, special=False)
            seq.pending.extend(tokens)
            seq.text.append(text.encode())
            seq.written += len(tokens)
            seq.forced += len(tokens)
            for token in tokens:
                seq.sampler.accept(token)
            self.stats.forced += len(tokens)
        return complete

    def _step(self, live: list[_Sequence]) -> list[_Sequence]:
        """Evaluate every live sequence's pending tokens in one batch and sample each one's next
        token; return the sequences still live."""
        started = time.perf_counter()
        self.stats.step_tokens += sum(len(seq.pending) for seq in live)
        rows = self._feed(live)
        self.stats.steps += 1
        self.stats.step_seconds += time.perf_counter() - started
        return self._advance(live, rows)

    def _feed(self, live: list[_Sequence]) -> list[int]:
        """Evaluate the live sequences' pending tokens in one llama_decode; return the batch row
        of each one's last token."""
        entries: list[tuple[int, int, tuple[int], bool]] = []
        rows: list[int] = []
        for seq in live:
            n = len(seq.pending)
            entries.extend(
                (t, seq.position + i, (seq.index,), i == n - 1) for i, t in enumerate(seq.pending)
            )
            rows.append(len(entries) - 1)
            seq.position += n
            if seq.index == 0:
                self.model._resident.extend(seq.pending)
            seq.pending = []
        self.model._decode(entries)
        return rows

    def _advance(self, live: list[_Sequence], rows: list[int]) -> list[_Sequence]:
        """Sample each live sequence's next token; return those that go on."""
        started = time.perf_counter()
        still = [seq for seq, row in zip(live, rows, strict=True) if self._next(seq, row)]
        self.stats.sample_seconds += time.perf_counter() - started
        return still

    def _next(self, seq: _Sequence, row: int) -> bool:
        """Sample seq's next token from batch row `row`; return whether seq goes on."""
        if seq.job.abandoned.is_set():
            return self._finish(seq, "abandoned")
        logits = self.model.logits(row)
        if seq.job.probes:
            self._probe(seq, logits)
        token = seq.sampler.sample(logits, self.stats)
        self.stats.sampled += 1
        seq.sampler.accept(token)
        seq.pending.append(token)
        seq.text.append(self.model.piece(token))
        seq.written += 1
        if self._force(seq):
            return self._finish(seq, "stop")
        if seq.written >= min(seq.job.max_tokens, self.model.room - len(seq.job.prompt)):
            return self._finish(seq, "length")
        return True

    def _probe(self, seq: _Sequence, logits: npt.NDArray[np.float32]) -> None:
        """Keep the alternatives of the token about to be sampled if a probe's text ends here."""
        tail = b"".join(seq.text[-8:])
        if any(tail.endswith(probe) for probe in seq.job.probes):
            at = len(b"".join(seq.text).decode("utf-8", "replace"))
            seq.alternatives.append((at, seq.sampler.alternatives(logits)))

    def _finish(self, seq: _Sequence, reason: str) -> bool:
        seq.sampler.close()
        self.done(
            seq.index,
            Decoded(
                text=b"".join(seq.text).decode("utf-8", "replace"),
                prompt_tokens=len(seq.job.prompt),
                cached_tokens=seq.cached,
                output_tokens=seq.written,
                forced_tokens=seq.forced,
                finish_reason=reason,
                alternatives=seq.alternatives,
            ),
        )
        return False

    def _release(self) -> None:
        """Free every sequence but 0, whose tokens the next run may reuse."""
        for seq in range(1, MAX_SEQUENCES):
            self.model._llama.llama_memory_seq_rm(self.model._memory, seq, -1, -1)
