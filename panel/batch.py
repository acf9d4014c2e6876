"""The batch path of the queue: pending persona reviews sent as one provider batch, at half price.

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
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from panel.cards import ToolCard
from panel.errors import InputError, ProviderError, RefusalError, TransientProviderError
from panel.personas import Answer
from panel.providers.base import BatchResults, BatchStatus, Generation, Provider, Request
from panel.queue import LEASE_SECONDS, RunStats
from panel.review import InvalidAnswer, parse_answer, stored_review
from panel.runtime import Runtime
from panel.store import BatchItem, CallRecord, insert_call, insert_review

BATCH_PRICE = 0.5
"""Batch answers are logged at half the live price: what OpenAI and Anthropic charge for them."""

MAX_REQUESTS = 10_000
"""Requests per batch (OpenAI takes up to 50,000 in 200 MB, Anthropic 100,000 in 256 MB)."""

POLL_SECONDS = 30.0


@dataclass(frozen=True)
class HeldBatch:
    """A submitted batch this process holds the lease of."""

    row: int
    provider: str
    batch_id: str
    created_at: float


@dataclass(frozen=True)
class Judged:
    """What one batch answer came to: a review to store, or the error its task fails with."""

    outcome: str
    """ok, invalid, refusal or error, as in the call log."""
    answer: Answer | None = None
    error: str | None = None
    generation: Generation | None = None


def batch_providers(runtime: Runtime) -> dict[str, Provider]:
    """Return the batch-capable provider of each provider the panel uses, or raise InputError."""
    if runtime.settings.record is not None:
        raise InputError("--batch-api writes no cassettes: drop --record")
    found: dict[str, Provider] = {}
    for persona in runtime.personas:
        provider = _unwrapped(runtime.reviewer.provider_for(persona))
        if not provider.supports_batch:
            raise InputError(
                f"--batch-api needs a provider with a batch API (openai or anthropic), "
                f"not '{provider.name}'"
            )
        found[provider.name] = provider
    return found


def _asked(item: BatchItem) -> Request:
    """Return what the answer's judges need to know of the request an item sent (not its text)."""
    return Request(
        messages=[],
        schema={},
        schema_name="",
        model=item.model,
        persona=item.persona,
        tool=item.tool,
        prompt_version=item.prompt_version,
    )


def _unwrapped(provider: Provider) -> Provider:
    """Return the provider under its wrappers: rate limits are for live calls, a batch is one."""
    while isinstance(inner := getattr(provider, "inner", None), Provider):
        provider = inner
    return provider


class Batcher:
    """Submits, polls and ingests provider batches for the review tasks of one store."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        lease: float = LEASE_SECONDS,
        poll_interval: float = POLL_SECONDS,
        stats: RunStats | None = None,
        on_change: Callable[[], None] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.reviewer = runtime.reviewer
        self.providers = batch_providers(runtime)
        self.lease = lease
        self.poll_interval = poll_interval
        self.stats = stats or RunStats()
        self.on_change = on_change or (lambda: None)
        self.notify = notify or (lambda _line: None)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.personas = {p.key: p for p in runtime.personas}
        self._cards: dict[str, ToolCard | None] = {}
        self._seen: dict[int, tuple[str, int]] = {}

    async def run(self) -> RunStats:
        """Batch every pending review and wait until every open batch is ingested."""
        self._check_open_providers()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while True:
                await self._submit_claimable()
                for batch in self._hold_open_batches():
                    await self._advance(batch)
                if not self._open_batches():
                    return self.stats
                await asyncio.sleep(self.poll_interval)
        finally:
            heartbeat.cancel()
            self._release_unsent()

    # --- submitting ----------------------------------------------------------------------------

    async def _submit_claimable(self) -> None:
        """Claim the reviews no batch holds yet and submit them, one batch per provider."""
        while claimed := self._claim_tasks():
            groups: dict[str, list[tuple[BatchItem, Request]]] = {}
            for tool, persona_key in claimed:
                if (prepared := self._prepare(tool, persona_key)) is not None:
                    provider, item, request = prepared
                    groups.setdefault(provider, []).append((item, request))
            for provider, entries in groups.items():
                await self._submit(provider, entries)

    def _claim_tasks(self) -> list[tuple[str, str]]:
        """Claim pending tasks (or ones a dead worker held) that no open batch asks for."""
        now = time.time()
        with self.store.transaction() as db:
            rows = db.execute(
                """UPDATE tasks SET state = 'running', lease_owner = ?, lease_expires = ?,
                       attempts = attempts + 1, updated_at = ?
                   WHERE rowid IN (
                       SELECT t.rowid FROM tasks t
                       WHERE (t.state = 'pending' OR (t.state = 'running' AND t.lease_expires < ?))
                         AND NOT EXISTS (
                             SELECT 1 FROM batch_items i JOIN batches b ON b.id = i.batch
                             WHERE b.state = 'submitted' AND i.outcome IS NULL
                               AND i.tool = t.tool AND i.persona = t.persona)
                       ORDER BY t.rowid LIMIT ?)
                   RETURNING tool, persona""",
                (self.owner, now + self.lease, now, now, MAX_REQUESTS),
            ).fetchall()
        return sorted((row["tool"], row["persona"]) for row in rows)

    def _prepare(self, tool: str, persona_key: str) -> tuple[str, BatchItem, Request] | None:
        """Return (provider, item, request) for a claimed task, or settle it here and None.

        A review already stored is reused, as a live run would; an unknown persona or tool fails.
        """
        persona = self.personas.get(persona_key)
        card = self._card(tool)
        if persona is None or card is None:
            missing = f"persona '{persona_key}' is not on this panel" if persona is None else None
            error = missing or f"queued tool '{tool}' is not in the store"
            with self.store.transaction() as db:
                self._fail_task(db, tool, persona_key, error, f"review of {tool}: {error}")
            return None
        card_hash = card.content_hash()
        if self.reviewer.cached_review(card_hash, persona) is not None:
            with self.store.transaction() as db:
                self._finish_task(db, tool, persona_key)
            return None
        request, prompt_hash = self.reviewer.request_for(card, persona)
        item = BatchItem(
            custom_id="",  # numbered when the batch is put together
            tool=tool,
            persona=persona_key,
            model=request.model,
            prompt_version=request.prompt_version,
            prompt_hash=prompt_hash,
            card_hash=card_hash,
        )
        return _unwrapped(self.reviewer.provider_for(persona)).name, item, request

    async def _submit(self, provider: str, entries: list[tuple[BatchItem, Request]]) -> None:
        # custom_id: unique in the batch, readable, and within every provider's [a-zA-Z0-9_-]{1,64}
        items = [
            replace(item, custom_id=f"{n:05d}-{item.persona}-{item.tool}"[:64])
            for n, (item, _) in enumerate(entries)
        ]
        requests = [
            (item.custom_id, request) for item, (_, request) in zip(items, entries, strict=True)
        ]
        batch_id = await self.providers[provider].batch_create(requests)
        self.store.save_batch(provider, batch_id, "submitted", self.owner, self.lease, items)
        self.notify(f"{provider} batch {batch_id}: {len(items)} review(s) submitted")

    def _release_unsent(self) -> None:
        """Put back the tasks this process claimed but did not get into a batch."""
        with self.store.transaction() as db:
            db.execute(
                """UPDATE tasks SET state = 'pending', lease_owner = NULL, updated_at = ?
                   WHERE lease_owner = ? AND state = 'running' AND NOT EXISTS (
                       SELECT 1 FROM batch_items i JOIN batches b ON b.id = i.batch
                       WHERE b.state = 'submitted' AND i.outcome IS NULL
                         AND i.tool = tasks.tool AND i.persona = tasks.persona)""",
                (time.time(), self.owner),
            )

    # --- polling -------------------------------------------------------------------------------

    def _open_batches(self) -> int:
        row = self.store.db.execute("SELECT count(*) FROM batches WHERE state = 'submitted'")
        return int(row.fetchone()[0])

    def _check_open_providers(self) -> None:
        """Refuse to start when an open batch belongs to a provider this run cannot poll."""
        rows = self.store.db.execute(
            "SELECT DISTINCT provider FROM batches WHERE state = 'submitted'"
        ).fetchall()
        if stray := sorted(row[0] for row in rows if row[0] not in self.providers):
            raise InputError(
                f"a batch of provider '{stray[0]}' is still open: "
                f"run `panel queue run --batch-api --provider {stray[0]}` first"
            )

    def _hold_open_batches(self) -> list[HeldBatch]:
        """Take (or keep) the lease of every open batch whose holder is gone, and its tasks."""
        now = time.time()
        with self.store.transaction() as db:
            rows = db.execute(
                """UPDATE batches SET lease_owner = ?, lease_expires = ?, updated_at = ?
                   WHERE state = 'submitted'
                     AND (lease_owner = ? OR lease_owner IS NULL OR lease_expires < ?)
                   RETURNING id, provider, batch_id, created_at""",
                (self.owner, now + self.lease, now, self.owner, now),
            ).fetchall()
            for row in rows:
                db.execute(
                    """UPDATE tasks SET state = 'running', lease_owner = ?, lease_expires = ?,
                           updated_at = ?
                       WHERE (tool, persona) IN (
                           SELECT tool, persona FROM batch_items WHERE batch = ? AND outcome IS NULL)
                         AND (state = 'pending'
                              OR (state = 'running' AND (lease_owner = ? OR lease_expires < ?)))""",
                    (self.owner, now + self.lease, now, row["id"], self.owner, now),
                )
        return [HeldBatch(r["id"], r["provider"], r["batch_id"], r["created_at"]) for r in rows]

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
            with self.store.transaction() as db:
                db.execute("UPDATE batches SET status = ? WHERE id = ?", (status.state, batch.row))
        self.on_change()

    def _report(self, batch: HeldBatch, status: BatchStatus) -> None:
        """Tell the user what changed since the last poll."""
        if self._seen.get(batch.row) != (status.state, status.done):
            self._seen[batch.row] = (status.state, status.done)
            counts = f" ({status.done}/{status.total})" if status.total else ""
            self.notify(f"{batch.provider} batch {batch.batch_id}: {status.state}{counts}")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            expires = time.time() + self.lease
            with self.store.transaction() as db:
                for table, state in (("batches", "submitted"), ("tasks", "running")):
                    db.execute(
                        f"UPDATE {table} SET lease_expires = ? WHERE lease_owner = ? AND state = ?",
                        (expires, self.owner, state),
                    )

    # --- ingesting -----------------------------------------------------------------------------

    def _ingest(self, batch: HeldBatch, status: BatchStatus, results: BatchResults) -> None:
        """Store every answer of an ended batch, fail every task it did not answer well."""
        provider = self.providers[batch.provider]
        unanswered = ProviderError(
            f"{batch.provider}: batch {status.state} without answering this request"
            + (f" ({status.error})" if status.error else ""),
            provider=batch.provider,
        )
        done, failed = self.stats.tasks_done, self.stats.tasks_failed
        for item in self.store.batch_items(batch.row):
            if item.outcome is None:
                result = results.get(item.custom_id, unanswered)
                self._ingest_one(batch, provider, item, self._judge(item, result))
        self.notify(
            f"{batch.provider} batch {batch.batch_id}: {self.stats.tasks_done - done} review(s) "
            f"stored, {self.stats.tasks_failed - failed} failed"
        )
        with self.store.transaction() as db:
            db.execute(
                """UPDATE batches SET state = 'ended', status = ?, lease_owner = NULL, updated_at = ?
                   WHERE id = ?""",
                (status.state, time.time(), batch.row),
            )

    def _judge(self, item: BatchItem, result: Generation | ProviderError) -> Judged:
        """Return what one answer comes to under the live validation rules (without re-asking)."""
        if isinstance(result, ProviderError):
            return Judged("error", error=str(result))
        persona = self.personas.get(item.persona)
        if persona is None:
            return Judged("error", error=f"persona '{item.persona}' is not on this panel")
        try:
            answer = parse_answer(_asked(item), result, persona.answer_model)
        except InvalidAnswer as bad:
            error = (
                f"{item.tool}: {persona.display_name} gave no valid review "
                f"(a batch answer is not re-asked): {bad.problems[0]}"
            )
            return Judged("invalid", error=error, generation=result)
        except RefusalError as refusal:
            return Judged("refusal", error=str(refusal), generation=result)
        return Judged("ok", answer=answer, generation=result)

    def _ingest_one(
        self, batch: HeldBatch, provider: Provider, item: BatchItem, judged: Judged
    ) -> None:
        """Log one answer and settle its task, in one transaction; an item is ingested once."""
        card = self.store.get_tool(item.tool)  # as stored now: never write back a card it replaced
        error = judged.error
        if judged.answer is not None and (card is None or card.content_hash() != item.card_hash):
            error = f"the card of {item.tool} changed while its batch ran"
        with self.store.transaction() as db:
            if not db.execute(
                """UPDATE batch_items SET outcome = ? WHERE batch = ? AND custom_id = ?
                       AND outcome IS NULL""",
                (judged.outcome, batch.row, item.custom_id),
            ).rowcount:
                return
            insert_call(db, self._call_record(batch, provider, item, judged))
            if not db.execute(
                """SELECT 1 FROM tasks WHERE tool = ? AND persona = ? AND state = 'running'
                       AND lease_owner = ?""",
                (item.tool, item.persona, self.owner),
            ).fetchone():
                return  # done meanwhile by a live run, or requeued: logged, not applied
            if error is None and judged.answer is not None and card is not None:
                review = stored_review(
                    item.card_hash, provider.name, _asked(item), judged.answer, 1
                )
                insert_review(db, card, review)
                self._finish_task(db, item.tool, item.persona)
            else:
                job_error = (
                    f"review of {item.tool} by {item.persona} failed in {provider.name} batch "
                    f"{batch.batch_id}: {error}"
                )
                self._fail_task(db, item.tool, item.persona, error or "failed", job_error)

    def _call_record(
        self, batch: HeldBatch, provider: Provider, item: BatchItem, judged: Judged
    ) -> CallRecord:
        """Return the call log entry of one batch answer (latency: submission to ingestion)."""
        generation = judged.generation
        tokens_in = generation.input_tokens if generation else 0
        tokens_out = generation.output_tokens if generation else 0
        cost = provider.cost_usd(item.model, tokens_in, tokens_out) if generation else None
        error = judged.error
        if judged.outcome == "refusal" and generation is not None:
            error = generation.refusal or generation.text
        return CallRecord(
            provider=provider.name,
            model=item.model,
            tool=item.tool,
            persona=item.persona,
            prompt_hash=item.prompt_hash,
            latency_ms=int((time.time() - batch.created_at) * 1000),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=round(cost * BATCH_PRICE, 6) if cost is not None else None,
            outcome=judged.outcome,
            error=error[:500] if error else None,
        )

    # --- task states (as the QueueRunner sets them) --------------------------------------------

    def _finish_task(self, db: sqlite3.Connection, tool: str, persona: str) -> None:
        db.execute(
            """UPDATE tasks SET state = 'done', last_error = NULL, lease_owner = NULL, updated_at = ?
               WHERE tool = ? AND persona = ?""",
            (time.time(), tool, persona),
        )
        self.stats.tasks_done += 1

    def _fail_task(
        self, db: sqlite3.Connection, tool: str, persona: str, error: str, job_error: str
    ) -> None:
        """Fail a task for good, and every unfinished job that needs it."""
        now = time.time()
        db.execute(
            """UPDATE tasks SET state = 'failed', last_error = ?, lease_owner = NULL, updated_at = ?
               WHERE tool = ? AND persona = ?""",
            (error, now, tool, persona),
        )
        self.stats.jobs_failed += db.execute(
            """UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ?
               WHERE state IN ('pending', 'running') AND (a = ? OR b = ?)""",
            (job_error, now, tool, tool),
        ).rowcount
        self.stats.tasks_failed += 1

    def _card(self, slug: str) -> ToolCard | None:
        if slug not in self._cards:
            self._cards[slug] = self.store.get_tool(slug)
        return self._cards[slug]
