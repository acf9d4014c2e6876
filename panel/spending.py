"""What a run spends on model calls, and the --max-cost ceiling no call may cross.

Before a call starts, its estimated cost (prompt characters / 4 at the input price, plus the
whole max_tokens at the output price: an upper bound) is reserved; a call whose estimate would
take what is spent and reserved past the ceiling does not start (CostCeilingReached, exit 3).
When the call ends, the reservation gives way to the call's logged cost. Prices come from
panel/providers/prices.toml and the user's own prices file (--prices); a model missing in both
has an unknown cost, and a ceiling cannot be kept with it, so --max-cost then refuses to start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from panel.errors import ConfigError, CostCeilingReached
from panel.providers.base import (
    Generation,
    Provider,
    Request,
    counted_tokens,
    estimated_prompt_tokens,
    prices_read_on,
)
from panel.store import CallRecord


def estimate_usd(provider: Provider, request: Request) -> float | None:
    """Return the most a call may cost (its whole max_tokens answered), or None if unpriced."""
    return provider.cost_usd(request.model, estimated_prompt_tokens(request), request.max_tokens)


def call_record(
    provider: Provider,
    request: Request,
    prompt_hash: str,
    generation: Generation | None,
    outcome: str,
    error: str | None,
    latency_ms: int,
    *,
    billed: bool = False,
    share: float = 1.0,
) -> CallRecord:
    """Return the call log entry of one call that ended, live or in a provider batch (at
    `share` of the live price): the one place a call is priced.

    Its cost is that of the usage the provider reported, if believable (counted_tokens: a server
    that under-reports cannot lower what is spent); a call answered with nothing usable (billed)
    counts at its estimate."""
    cost = None
    if generation is not None:
        cost = provider.cost_usd(request.model, *counted_tokens(request, generation))
    elif billed:
        cost = estimate_usd(provider, request)
    return CallRecord(
        provider=provider.name,
        model=request.model,
        tool=request.tool,
        persona=request.persona,
        prompt_hash=prompt_hash,
        latency_ms=latency_ms,
        input_tokens=generation.input_tokens if generation else 0,
        output_tokens=generation.output_tokens if generation else 0,
        cached_tokens=generation.cached_tokens if generation else 0,
        cost_usd=cost if cost is None or share == 1.0 else round(cost * share, 6),
        outcome=outcome,
        error=error[:500] if error else None,
    )


def unpriced_error(model: str, ceiling_from: str = "--max-cost") -> ConfigError:
    """Return the refusal of a ceiling that cannot be kept, naming where the ceiling came from
    (--max-cost, PANEL_MAX_COST or the config file) and what to do about it."""
    drop = {
        "--max-cost": "drop --max-cost",
        "PANEL_MAX_COST": "unset PANEL_MAX_COST",
    }.get(ceiling_from, "remove max_cost from the config file")
    return ConfigError(
        f"{ceiling_from}: the price of {model} is unknown (not in the built-in prices read "
        f"{prices_read_on()} nor in a prices file of yours): a ceiling cannot be kept; give "
        f"its price in a prices file (--prices FILE or PANEL_PRICES) or {drop}"
    )


OutputSeen = Callable[[str, str], float | None]
"""(provider, model) -> the mean output tokens of its answers in the call log, or None."""


@dataclass
class Estimate:
    """What a planned run will cost: its calls, dollars at most (None if any is unpriced), and
    dollars as likely, where every model has answered before (the answers' mean length)."""

    calls: int
    usd: float | None
    unpriced: list[str]
    likely_usd: float | None = None

    def line(self) -> str:
        """Return the one line said before a long run."""
        if self.usd is None:
            cost = "cost unknown"
        elif self.likely_usd is None:
            cost = f"estimated cost at most ${self.usd:.4f}"
        else:
            cost = (
                f"estimated cost ${self.likely_usd:.4f} at the length of past answers, "
                f"at most ${self.usd:.4f}"
            )
        return f"{self.calls} model call(s) to make, {cost}"


def estimate(
    planned: Iterable[tuple[Provider, Request]], seen: OutputSeen | None = None
) -> Estimate:
    """Return the estimate of a run's planned calls (the models without a price named); with
    seen, also the likely cost at the mean length of each model's past answers."""
    calls, usd, unpriced = 0, 0.0, set()
    likely: float | None = 0.0 if seen else None
    answers: dict[tuple[str, str], float | None] = {}  # one look at the call log per model
    for provider, request in planned:
        calls += 1
        cost = estimate_usd(provider, request)
        if cost is None:
            unpriced.add(provider.priced_as(request.model))
            continue
        usd += cost
        if seen is None or likely is None:
            continue
        key = (provider.name, request.model)
        if key not in answers:
            answers[key] = seen(*key)
        if (answer := answers[key]) is None:
            likely = None
        else:
            prompt = estimated_prompt_tokens(request)
            likely += provider.cost_usd(request.model, prompt, round(answer)) or 0.0
    return Estimate(
        calls,
        None if unpriced else round(usd, 6),
        sorted(unpriced),
        None if unpriced or likely is None or not calls else round(likely, 6),
    )


@dataclass
class Spending:
    """The calls, tokens and dollars of one run, kept under an optional ceiling."""

    max_usd: float | None = None
    ceiling_from: str = "--max-cost"
    """How the user set the ceiling (a flag, PANEL_MAX_COST, the config file), for its errors."""
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    usd: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    """provider:model of answered calls whose price is unknown (their cost is not in usd)."""
    reserved: float = 0.0
    refused: float | None = None
    """The estimate of the call the ceiling stopped."""
    _settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def admit(self, provider: Provider, request: Request) -> float:
        """Reserve a call's estimated cost before it starts and return it (settle gives it
        back); raise CostCeilingReached if the call could take the run past the ceiling.

        A call that fits only once calls under way have ended waits for them: their estimates
        are upper bounds, and what they really cost may leave room for it."""
        while (cost := self.reserve(provider, request)) is None:
            assert self.max_usd is not None and self.refused is not None  # reserve said so
            if self.usd + self.refused > self.max_usd or self.reserved <= 0:
                raise CostCeilingReached(self.stop_line(), provider=provider.name)
            self._settled.clear()
            await self._settled.wait()
        return cost

    def reserve(self, provider: Provider, request: Request, share: float = 1.0) -> float | None:
        """Reserve share of a call's estimate now, without waiting (a provider batch is priced
        at a share of a live call); return it, or None when it would cross the ceiling."""
        if self.max_usd is None:
            return 0.0
        cost = estimate_usd(provider, request)
        if cost is None:
            raise unpriced_error(provider.priced_as(request.model), self.ceiling_from)
        cost *= share
        if self.usd + self.reserved + cost > self.max_usd:
            self.refused = cost
            return None
        self.reserved += cost
        return cost

    def release(self, reserved: float) -> None:
        """Give back the reservation of a call that never ended (cancelled)."""
        self.reserved = max(0.0, self.reserved - reserved)
        self._settled.set()

    def settle(self, reserved: float, call: CallRecord) -> None:
        """Count a call that ended (answered or not), in place of its reservation."""
        self.release(reserved)
        self.calls += 1
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cached_tokens += call.cached_tokens
        if call.cost_usd is not None:
            self.usd += call.cost_usd
        elif call.input_tokens or call.output_tokens:
            self.unpriced.add(f"{call.provider}:{call.model}")

    def left(self) -> str:
        """Return what was spent and what is left of the ceiling, in words."""
        spent = f"spent ${self.usd:.4f}"
        if self.max_usd is None:
            return spent
        return f"{spent} of ${self.max_usd:.4f}, ${max(0.0, self.max_usd - self.usd):.4f} left"

    def stop_line(self) -> str:
        """Return the line a run stopped by the ceiling ends on (once its calls under way are
        settled, so what was spent is what they cost)."""
        call = (
            ""
            if self.refused is None
            else f", and the next call may cost up to ${self.refused:.4f}"
        )
        return f"cost ceiling reached: {self.left()}{call}; the rest stays pending"

    def to_json(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "usd": None if self.unpriced else round(self.usd, 6),
            "unpriced": sorted(self.unpriced),
        }
