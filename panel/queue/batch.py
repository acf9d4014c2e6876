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

from panel.cards import ToolCard
from panel.errors import (
    InputError,
    ProviderError,
    RefusalError,
    TransientProviderError,
    located,
)
from panel.personas import Answer, PairAnswer
from panel.providers.base import BatchResults, BatchStatus, Generation, Provider, Request
from panel.queue.runner import LEASE_SECONDS, RunStats, heartbeat_loop, worker_id
from panel.queue.store import BatchItem, BatchStore, HeldBatch, QueueStore
from panel.review import InvalidAnswer, pair_label, parse_answer, stored_pair, stored_review
from panel.runtime import Runtime
from panel.store import CallRecord, mitigations_key

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
    answer: Answer | PairAnswer | None = None
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
    return item.tool if item.second_tool is None else pair_label(item.tool, item.second_tool)


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
            claimed = self.batches.claim_tasks(self.owner, self.lease, MAX_REQUESTS)
            pairs = self.batches.claim_pair_tasks(
                self.owner, self.lease, MAX_REQUESTS - len(claimed)
            )
            if not claimed and not pairs:
                break
            groups: dict[str, list[tuple[BatchItem, Request]]] = {}
            for tool, persona_key in claimed:
                self._reserve_into(groups, self._prepare(tool, persona_key))
            for a, b, persona_key in pairs:
                self._reserve_into(groups, self._prepare_pair((a, b), persona_key))
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
        reservations = [
            self.runtime.reserve(self.providers[provider], request, BATCH_PRICE)
            for provider, _, request in prepared
        ]
        if None in reservations:
            self.ceiling_reached = True
            for reserved in reservations:
                self.runtime.release(reserved or 0.0)
            return
        for (provider, item, request), reserved in zip(prepared, reservations, strict=True):
            key = (item.tool, item.second_tool, item.persona, item.sample)
            self._reserved[key] = reserved or 0.0
            groups.setdefault(provider, []).append((item, request))

    def _prepare_pair(
        self, pair: tuple[str, str], persona_key: str
    ) -> list[tuple[str, BatchItem, Request]]:
        """Return (provider, item, request) for each answer (order and sample) a claimed pair
        task still needs, or settle it here and return [] (as _prepare does a review)."""
        cards = self._card(pair[0]), self._card(pair[1])
        samples = self.queue.pair_task_samples(pair).get(persona_key, 1)
        asks = []
        if cards[0] is not None and cards[1] is not None:
            asks = self.runtime.pair_ask((cards[0], cards[1]), persona_key, samples)
        if not asks:
            missing = next((slug for slug, card in zip(pair, cards, strict=True) if not card), None)
            error = InputError(
                "queued tool not in the store" if missing else "not a persona on this panel",
                tool=missing or pair_label(*pair),
                persona=None if missing else persona_key,
            )
            jobs = self.queue.fail_pair_task(pair, persona_key, error.message, str(error))
            self.stats.pairs_failed += 1
            self.stats.jobs_failed += jobs
            return []
        needed = [(ask, sample) for ask in asks for sample in self.runtime.missing_pair(ask)]
        if not needed:
            self.queue.finish_pair_task(pair, persona_key)
            self.stats.pairs_done += 1
            return []
        prepared = []
        for ask, sample in needed:
            provider, request, prompt_hash = self.runtime.pair_request(ask, sample)
            item = BatchItem(
                custom_id="",  # numbered when the batch is put together
                tool=ask.first.slug,
                persona=persona_key,
                model=request.model,
                prompt_version=request.prompt_version,
                prompt_hash=prompt_hash,
                card_hash=ask.first.content_hash(),
                sample=sample,
                temperature=request.temperature,
                second_tool=ask.second.slug,
                second_hash=ask.second.content_hash(),
            )
            prepared.append((provider.name, item, request))
        return prepared

    def _prepare(self, tool: str, persona_key: str) -> list[tuple[str, BatchItem, Request]]:
        """Return (provider, item, request) for each sample a claimed task still needs, or
        settle it here and return [].

        Samples already stored are reused, as a live run would; an unknown persona or tool fails.
        """
        card = self._card(tool)
        samples = self.queue.task_samples(tool).get(persona_key, 1)
        ask = None if card is None else self.runtime.ask(card, persona_key, samples)
        if card is None or ask is None:
            error = InputError(
                "not a persona on this panel"
                if card is not None
                else "queued tool not in the store",
                tool=tool,
                persona=persona_key if card is not None else None,
            )
            self._failed(self.queue.fail_task(tool, persona_key, error.message, str(error)))
            return []
        needed = self.runtime.missing(ask)
        if not needed:
            self.queue.finish_task(tool, persona_key)
            self.stats.tasks_done += 1
            return []
        prepared = []
        for sample in needed:
            provider, request, prompt_hash = self.runtime.request(ask, sample)
            item = BatchItem(
                custom_id="",  # numbered when the batch is put together
                tool=tool,
                persona=persona_key,
                model=request.model,
                prompt_version=request.prompt_version,
                prompt_hash=prompt_hash,
                card_hash=card.content_hash(),
                sample=sample,
                mitigations=mitigations_key(request.mitigations),
                temperature=request.temperature,
            )
            prepared.append((provider.name, item, request))
        return prepared

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
        stats = self.stats
        before = (stats.tasks_done, stats.tasks_failed, stats.pairs_done, stats.pairs_failed)
        for item in self.batches.batch_items(batch.row):
            if item.outcome is None:
                result = results.get(item.custom_id, unanswered)
                judged = self._judge(item, result)
                if item.second_tool is None:
                    self._ingest_one(batch, provider, item, judged)
                else:
                    self._ingest_pair(batch, provider, item, judged)
        done, failed, pairs_done, pairs_failed = (
            now - then
            for now, then in zip(
                (stats.tasks_done, stats.tasks_failed, stats.pairs_done, stats.pairs_failed),
                before,
                strict=True,
            )
        )
        pairs_line = f", {pairs_done} pair task(s) done, {pairs_failed} failed"
        self.notify(
            f"{batch.provider} batch {batch.batch_id}: {done} review(s) stored, {failed} failed"
            + (pairs_line if pairs_done or pairs_failed else "")
        )
        self.batches.end_batch(batch.row, status.state)

    def _judge(self, item: BatchItem, result: Generation | ProviderError) -> Judged:
        """Return what one answer comes to under the live validation rules (without re-asking)."""
        if isinstance(result, ProviderError):
            return Judged("error", error=str(result))
        persona = next((p for p in self.runtime.personas if p.key == item.persona), None)
        if persona is None:
            return Judged("error", error=f"{item.persona}: not a persona on this panel")
        model = persona.answer_model if item.second_tool is None else persona.pair_model
        noun = "review" if item.second_tool is None else "judgment"
        try:
            answer: Answer | PairAnswer = parse_answer(_asked(item), result, model)
        except InvalidAnswer as bad:
            error = located(
                f"gave no valid {noun} (a batch answer is not re-asked): {bad.problems[0]}",
                tool=_label(item),
                persona=item.persona,
            )
            return Judged("invalid", error=error, generation=result)
        except RefusalError as refusal:
            return Judged("refusal", error=str(refusal), generation=result)
        return Judged("ok", answer=answer, generation=result)

    def _ingest_one(
        self, batch: HeldBatch, provider: Provider, item: BatchItem, judged: Judged
    ) -> None:
        """Log one answer and settle its task, in one transaction; an item is ingested once."""
        card = self.runtime.tool(item.tool)  # as stored now: never write back a card it replaced
        error = judged.error
        if judged.answer is not None and (card is None or card.content_hash() != item.card_hash):
            error = f"the card of {item.tool} changed while its batch ran"
        record = self._call_record(batch, provider, item, judged)
        review = None
        if error is None and isinstance(judged.answer, Answer) and card is not None:
            answer, asked = judged.answer, _asked(item)
            review = (
                card,
                stored_review(item.card_hash, provider.name, asked, answer, 1, record.cost_usd),
            )
        job_error = located(
            f"failed in {provider.name} batch {batch.batch_id}: {error}",
            tool=item.tool,
            persona=item.persona,
        )
        settled = self.batches.settle_batch_item(
            batch.row,
            item,
            judged.outcome,
            record,
            self.owner,
            review,
            (error or "failed", job_error),
        )
        if settled is None:
            return
        reserved = self._reserved.pop((item.tool, None, item.persona, item.sample), 0.0)
        self.runtime.settle(reserved, record)
        if settled[0] == "done":
            self.stats.tasks_done += 1
        elif settled[0] == "failed":
            self._failed(settled[1])

    def _ingest_pair(
        self, batch: HeldBatch, provider: Provider, item: BatchItem, judged: Judged
    ) -> None:
        """Log one answer to a pair judgment and settle its pair task, in one transaction."""
        second = item.second_tool or ""
        cards = self.runtime.tool(item.tool), self.runtime.tool(second)
        shown = ((item.tool, item.card_hash), (second, item.second_hash or ""))
        error = judged.error
        if judged.answer is not None and any(
            card is None or card.content_hash() != content_hash
            for card, (_, content_hash) in zip(cards, shown, strict=True)
        ):
            changed = next(
                slug
                for card, (slug, h) in zip(cards, shown, strict=True)
                if card is None or card.content_hash() != h
            )
            error = f"the card of {changed} changed while its batch ran"
        judgment = None
        if error is None and isinstance(judged.answer, PairAnswer):
            first, other = cards
            assert first is not None and other is not None
            answer = stored_pair(shown, provider.name, _asked(item), judged.answer, 1)
            judgment = ((first, other), answer)
        job_error = located(
            f"failed in {provider.name} batch {batch.batch_id}: {error}",
            tool=_label(item),
            persona=item.persona,
        )
        record = self._call_record(batch, provider, item, judged)
        settled = self.batches.settle_pair_item(
            batch.row,
            item,
            judged.outcome,
            record,
            self.owner,
            judgment,
            (error or "failed", job_error),
        )
        if settled is None:
            return
        reserved = self._reserved.pop((item.tool, second, item.persona, item.sample), 0.0)
        self.runtime.settle(reserved, record)
        if settled[0] == "done":
            self.stats.pairs_done += 1
        elif settled[0] == "failed":
            self.stats.pairs_failed += 1
            self.stats.jobs_failed += settled[1]

    def _failed(self, jobs: int) -> None:
        """Count a review failed for good, and the jobs that failed with it."""
        self.stats.tasks_failed += 1
        self.stats.jobs_failed += jobs

    def _call_record(
        self, batch: HeldBatch, provider: Provider, item: BatchItem, judged: Judged
    ) -> CallRecord:
        """Return the call log entry of one batch answer (latency: submission to ingestion)."""
        generation = judged.generation
        tokens_in = generation.input_tokens if generation else 0
        tokens_out = generation.output_tokens if generation else 0
        cached = generation.cached_tokens if generation else 0
        cost = provider.cost_usd(item.model, tokens_in, tokens_out, cached) if generation else None
        error = judged.error
        if judged.outcome == "refusal" and generation is not None:
            error = generation.refusal or generation.text
        return CallRecord(
            provider=provider.name,
            model=item.model,
            tool=_label(item),
            persona=item.persona,
            prompt_hash=item.prompt_hash,
            latency_ms=int((time.time() - batch.created_at) * 1000),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cached_tokens=cached,
            cost_usd=round(cost * BATCH_PRICE, 6) if cost is not None else None,
            outcome=judged.outcome,
            error=error[:500] if error else None,
        )

    def _card(self, slug: str) -> ToolCard | None:
        if slug not in self._cards:
            self._cards[slug] = self.runtime.tool(slug)
        return self._cards[slug]
