"""The batch path of the queue: pending persona reviews sent as one provider batch, at half price.
Pair judgments (queue add --pairwise) go the same way once their tools' reviews are stored: a
later batch of the same run.

`panel queue run --batch-api` claims every pending review task, builds each request exactly as a
live review would (Reviewer.request_for), submits them as one batch per provider, polls it, and
ingests the answers by custom_id, judged by the live rules (parse_answer); the QueueRunner then
renders the comparisons. The batcher drives the providers' create/check/results hooks only.

No re-ask in batch mode: an invalid answer, a refusal, a per-request error, or a request the batch
ended without answering (expired, cancelled, failed) fails its task, and the jobs that need it,
with that error; `panel queue retry --failed` queues them again.

A batch lives in the store as submitted -> ended. It is recorded, with custom_id -> (tool,
persona), as soon as the provider accepts it, held under a lease that a heartbeat renews together
with its tasks' leases. A run killed while polling leaves it submitted; the next run takes it over
when the lease expires and polls the same batch instead of submitting again. Each answer is
ingested in one transaction (review, call log entry, task and job states), so a kill during
ingestion loses nothing and logs nothing twice. The one unguarded window is the submission itself:
killed after the provider accepted a batch but before it was recorded, the reviews go out again.
A submission the provider refuses puts its reviews back in the queue and stops the run; a poll
that fails for good stops the run too, leaving the batch to the next run (a transient failure is
just polled again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from panel.cards import ToolCard
from panel.errors import (
    InputError,
    ProviderError,
    RefusalError,
    TransientProviderError,
    located,
)
from panel.personas import Checked
from panel.providers.base import BatchResults, BatchStatus, Generation, Provider, Request
from panel.questions import KINDS, asked, label_of
from panel.queue.runner import LEASE_SECONDS, RunStats, heartbeat_loop, worker_id
from panel.queue.store import BatchItem, BatchStore, HeldBatch, QueueStore, Unit
from panel.review import Call, InvalidAnswer, parse_answer
from panel.runtime import Runtime
from panel.spending import call_record
from panel.store import PAIR, REVIEW, mitigations_key

BATCH_PRICE = 0.5
"""Batch answers are logged at half the live price: what OpenAI and Anthropic charge for them."""

MAX_REQUESTS = 10_000
"""Requests per batch (OpenAI takes up to 50,000 in 200 MB, Anthropic 100,000 in 256 MB)."""

POLL_SECONDS = 30.0


@dataclass(frozen=True)
class Judged:
    """What one batch answer came to: a review to store, or the error its task fails with."""

    outcome: str
    """ok, invalid, refusal or error, as in the call log."""
    answer: Checked | None = None
    error: str | None = None
    generation: Generation | None = None


def batch_providers(runtime: Runtime) -> dict[str, Provider]:
    """Return the provider of each provider name the panel uses, or raise InputError saying why
    one cannot batch (no batch API, or a wrapper such as --record that needs live calls)."""
    found = runtime.providers()
    for provider in found.values():
        if (reason := provider.cannot_batch()) is not None:
            raise InputError(reason)
    return found


def _label(item: BatchItem) -> str:
    """Return how the call log names what an item asked about: a tool, or a pair judgment's
    "first-vs-second"."""
    return label_of(_shown(item)[0])


def _kind(item: BatchItem) -> str:
    return REVIEW if item.second_tool is None else PAIR


def _shown(item: BatchItem) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the slugs and content hashes of the cards an item asked about, as shown."""
    if item.second_tool is None:
        return (item.tool,), (item.card_hash,)
    return (item.tool, item.second_tool), (item.card_hash, item.second_hash or "")


def _error_of(judged: Judged) -> str | None:
    """Return what the call log says went wrong with one batch answer (a refusal: its text)."""
    if judged.outcome == "refusal" and judged.generation is not None:
        return judged.generation.refusal or judged.generation.text
    return judged.error


def batch_item(call: Call[Any]) -> BatchItem:
    """Return the batch item of one call, numbered when its batch is put together."""
    key, cards = call.key, call.question.cards
    return BatchItem(
        custom_id="",
        tool=cards[0].slug,
        persona=key.persona,
        model=key.model,
        prompt_version=key.prompt_version,
        prompt_hash=call.prompt_hash,
        card_hash=key.card_hashes[0],
        sample=call.sample,
        mitigations=mitigations_key(key.mitigations),
        temperature=key.temperature,
        second_tool=cards[1].slug if len(cards) > 1 else None,
        second_hash=key.card_hashes[1] if len(cards) > 1 else None,
    )


def _asked(item: BatchItem) -> Request:
    """Return what the answer's judges need to know of the request an item sent (not its text)."""
    return Request(
        messages=[],
        schema={},
        schema_name="",
        model=item.model,
        persona=item.persona,
        tool=_label(item),
        prompt_version=item.prompt_version,
        sample=item.sample,
        mitigations=tuple(name for name in item.mitigations.split(",") if name),
        temperature=item.temperature,
    )


class Batcher:
    """Submits, polls and ingests provider batches for the review tasks of one store."""

    def __init__(
        self,
        runtime: Runtime,
        queue: QueueStore,
        batches: BatchStore,
        *,
        lease: float = LEASE_SECONDS,
        poll_interval: float = POLL_SECONDS,
        stats: RunStats | None = None,
        on_change: Callable[[], None] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.queue = queue
        self.batches = batches
        self.providers = batch_providers(runtime)
        self.lease = lease
        self.poll_interval = poll_interval
        self.stats = stats or RunStats()
        self.on_change = on_change or (lambda: None)
        self.notify = notify or (lambda _line: None)
        self.owner = worker_id()
        self._cards: dict[str, ToolCard | None] = {}
        self._seen: dict[int, tuple[str, int]] = {}
        self._reserved: dict[tuple[str, str | None, str, int], float] = {}
        """--max-cost: the estimate reserved for each review this run put in a batch."""
        self.ceiling_reached = False

    async def run(self) -> RunStats:
        """Batch every pending review and wait until every open batch is ingested."""
        self._check_open_providers()
        heartbeat = asyncio.create_task(heartbeat_loop(self.queue, self.owner, self.lease))
        try:
            while True:
                await self._submit_claimable()
                for batch in self.batches.hold_open_batches(self.owner, self.lease):
                    await self._advance(batch)
                # a batch of reviews that ended may have made pair judgments claimable
                if not self.batches.open_batches() and not await self._submit_claimable():
                    return self.stats
                await asyncio.sleep(self.poll_interval)
        finally:
            heartbeat.cancel()
            self.batches.release_unsent(self.owner)

    # --- submitting ----------------------------------------------------------------------------

    async def _submit_claimable(self) -> int:
        """Claim the reviews and pair judgments no batch holds yet and submit them, one batch
        per provider; return how many requests went out."""
        submitted = 0
        while not self.ceiling_reached:
            units = self.batches.claim(self.owner, self.lease, MAX_REQUESTS)
            if not units:
                break
            groups: dict[str, list[tuple[BatchItem, Request]]] = {}
            for unit in units:
                self._reserve_into(groups, self._prepare(unit))
            for provider, entries in groups.items():
                await self._submit(provider, entries)
                submitted += len(entries)
        return submitted

    def _reserve_into(
        self,
        groups: dict[str, list[tuple[BatchItem, Request]]],
        prepared: list[tuple[str, BatchItem, Request]],
    ) -> None:
        """Reserve the cost of one claimed task's requests and add them to the groups to submit.

        --max-cost: a task whose requests do not all fit stays claimed (release_unsent puts it
        back), its reservations given back.
        """
        spending = self.runtime.spending
        reservations = [
            spending.reserve(self.providers[provider], request, BATCH_PRICE)
            for provider, _, request in prepared
        ]
        if None in reservations:
            self.ceiling_reached = True
            for reserved in reservations:
                spending.release(reserved or 0.0)
            return
        for (provider, item, request), reserved in zip(prepared, reservations, strict=True):
            key = (item.tool, item.second_tool, item.persona, item.sample)
            self._reserved[key] = reserved or 0.0
            groups.setdefault(provider, []).append((item, request))

    def _prepare(self, unit: Unit) -> list[tuple[str, BatchItem, Request]]:
        """Return (provider, item, request) for each answer (sample, and order of a pair) a
        claimed unit still needs, or settle it here and return [].

        Answers already stored are reused, as a live run would; an unknown persona or tool fails.
        """
        cards = tuple(self._card(slug) for slug in unit.tools)
        known = tuple(card for card in cards if card is not None)
        samples = self.queue.samples_of(unit.kind, unit.tools).get(unit.persona, 1)
        questions = []
        if len(known) == len(cards):
            questions = self.runtime.questions(unit.kind, known, unit.persona, samples)
        if not questions:
            missing = next((s for s, card in zip(unit.tools, cards, strict=True) if not card), None)
            error = InputError(
                "queued tool not in the store" if missing else "not a persona on this panel",
                tool=missing or unit.label,
                persona=None if missing else unit.persona,
            )
            jobs = self.queue.fail(unit, error.message, str(error))
            self.stats.settled(unit.kind, "failed", jobs)
            return []
        calls = [call for q in questions for call in self.runtime.reviewer.plan(q).calls]
        if not calls:
            self.queue.finish(unit)
            self.stats.settled(unit.kind, "done")
            return []
        return [(call.provider.name, batch_item(call), call.request) for call in calls]

    async def _submit(self, provider: str, entries: list[tuple[BatchItem, Request]]) -> None:
        # custom_id: unique in the batch, readable, and within every provider's [a-zA-Z0-9_-]{1,64}
        items = [
            replace(item, custom_id=f"{n:05d}-{item.persona}-{_label(item)}"[:64])
            for n, (item, _) in enumerate(entries)
        ]
        requests = [
            (item.custom_id, request) for item, (_, request) in zip(items, entries, strict=True)
        ]
        batch_id = await self.providers[provider].batch_create(requests)
        self.batches.save_batch(provider, batch_id, self.owner, self.lease, items)
        pairs = sum(1 for item in items if item.second_tool is not None)
        parts = [f"{len(items) - pairs} review(s)"] if len(items) > pairs else []
        what = ", ".join(parts + ([f"{pairs} pair judgment(s)"] if pairs else []))
        self.notify(f"{provider} batch {batch_id}: {what} submitted")

    # --- polling -------------------------------------------------------------------------------

    def _check_open_providers(self) -> None:
        """Refuse to start when an open batch belongs to a provider this run cannot poll."""
        if stray := [p for p in self.batches.open_batch_providers() if p not in self.providers]:
            raise InputError(
                f"a batch of provider '{stray[0]}' is still open: "
                f"run `panel queue run --batch-api --provider {stray[0]}` first"
            )

    async def _advance(self, batch: HeldBatch) -> None:
        """Poll a held batch once; ingest it when it has ended."""
        provider = self.providers[batch.provider]
        try:
            status = await provider.batch_check(batch.batch_id)
            results = await provider.batch_results(batch.batch_id) if status.ended else {}
        except TransientProviderError as exc:
            self.notify(f"{batch.provider} batch {batch.batch_id}: {exc} (polling again)")
            return
        self._report(batch, status)
        if status.ended:
            self._ingest(batch, status, results)
        else:
            self.batches.set_batch_status(batch.row, status.state)
        self.on_change()

    def _report(self, batch: HeldBatch, status: BatchStatus) -> None:
        """Tell the user what changed since the last poll."""
        if self._seen.get(batch.row) != (status.state, status.done):
            self._seen[batch.row] = (status.state, status.done)
            counts = f" ({status.done}/{status.total})" if status.total else ""
            self.notify(f"{batch.provider} batch {batch.batch_id}: {status.state}{counts}")

    # --- ingesting -----------------------------------------------------------------------------

    def _ingest(self, batch: HeldBatch, status: BatchStatus, results: BatchResults) -> None:
        """Store every answer of an ended batch, fail every task it did not answer well."""
        provider = self.providers[batch.provider]
        unanswered = ProviderError(
            f"{batch.provider}: batch {status.state} without answering this request"
            + (f" ({status.error})" if status.error else ""),
            provider=batch.provider,
        )
        before = self.stats.units.copy()
        for item in self.batches.batch_items(batch.row):
            if item.outcome is None:
                result = results.get(item.custom_id, unanswered)
                self._ingest_item(batch, provider, item, self._judge(item, result))
        now = self.stats.units - before
        pairs = f", {now[PAIR, 'done']} pair task(s) done, {now[PAIR, 'failed']} failed"
        self.notify(
            f"{batch.provider} batch {batch.batch_id}: {now[REVIEW, 'done']} review(s) stored, "
            f"{now[REVIEW, 'failed']} failed"
            + (pairs if now[PAIR, "done"] or now[PAIR, "failed"] else "")
        )
        self.batches.end_batch(batch.row, status.state)

    def _judge(self, item: BatchItem, result: Generation | ProviderError) -> Judged:
        """Return what one answer comes to under the live validation rules (without re-asking)."""
        if isinstance(result, ProviderError):
            return Judged("error", error=str(result))
        persona = next((p for p in self.runtime.personas if p.key == item.persona), None)
        if persona is None:
            return Judged("error", error=f"{item.persona}: not a persona on this panel")
        kind = KINDS[_kind(item)]
        try:
            answer = parse_answer(_asked(item), result, kind.answer_model(persona))
        except InvalidAnswer as bad:
            error = located(
                f"gave no valid {kind.noun} (a batch answer is not re-asked): {bad.problems[0]}",
                tool=_label(item),
                persona=item.persona,
            )
            return Judged("invalid", error=error, generation=result)
        except RefusalError as refusal:
            return Judged("refusal", error=str(refusal), generation=result)
        return Judged("ok", answer=answer, generation=result)

    def _ingest_item(
        self, batch: HeldBatch, provider: Provider, item: BatchItem, judged: Judged
    ) -> None:
        """Log one answer and settle its unit, in one transaction; an item is ingested once."""
        slugs, hashes = _shown(item)
        cards = tuple(self.runtime.tool(slug) for slug in slugs)  # as stored now: never write
        # back a card it replaced
        known = tuple(card for card in cards if card is not None)
        error = judged.error
        changed = [
            s
            for s, c, h in zip(slugs, cards, hashes, strict=True)
            if not c or c.content_hash() != h
        ]
        if judged.answer is not None and changed:
            error = f"the card of {changed[0]} changed while its batch ran"
        request = _asked(item)
        record = call_record(
            provider,
            self._as_sent(item, known, request),
            item.prompt_hash,
            judged.generation,
            judged.outcome,
            _error_of(judged),
            int((time.time() - batch.created_at) * 1000),  # submission to ingestion
            share=BATCH_PRICE,
        )
        answer = None
        if error is None and judged.answer is not None:
            kind = KINDS[_kind(item)]
            how = asked(provider.name, request, 1)
            made = kind.record(known, judged.answer, how, record.cost_usd)
            answer = (known, made)
        job_error = located(
            f"failed in {provider.name} batch {batch.batch_id}: {error}",
            tool=_label(item),
            persona=item.persona,
        )
        settled = self.batches.settle_item(
            batch.row,
            item,
            judged.outcome,
            record,
            self.owner,
            answer,
            (error or "failed", job_error),
        )
        if settled is None:
            return
        reserved = self._reserved.pop((item.tool, item.second_tool, item.persona, item.sample), 0.0)
        self.runtime.spending.settle(reserved, record)
        unit, outcome, jobs = settled
        if outcome != "sample":
            self.stats.settled(unit.kind, outcome, jobs)

    def _as_sent(self, item: BatchItem, cards: tuple[ToolCard, ...], asked: Request) -> Request:
        """Return the request an item sent, as far as its usage is counted: its messages made
        again from the cards (the same text but for the fence's random part), so a batch answer
        whose server under-reports the usage is priced from counted tokens (counted_tokens), as
        a live one is."""
        questions = []
        if len(cards) == len(_shown(item)[0]):
            questions = self.runtime.questions(_kind(item), cards, item.persona, 1)
        if not questions:
            return asked
        sent = self.runtime.reviewer.call(questions[0], item.sample).request
        return replace(asked, messages=sent.messages)

    def _card(self, slug: str) -> ToolCard | None:
        if slug not in self._cards:
            self._cards[slug] = self.runtime.tool(slug)
        return self._cards[slug]
