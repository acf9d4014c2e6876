"""Seconds per card of a full panel on the embedded model, beside what llama.cpp alone can do.

    .venv/bin/python scripts/bench_local.py [--model NAME] [--repeat N] [CARD ...]
                                       (default: the default local model, examples/*.yaml)

First the ceiling, measured here with the low-level API and no sampling: prompt tokens per
second, and tokens decoded per second at batch 1 and at batch 4 (four sequences, one token
each per step). Then each card is reviewed by the four personas in one process, into a fresh
store, as `panel review` does (the model loads before the clock starts), and a line per card
gives the seconds, the prompt tokens evaluated and those reused or shared, the tokens written
(and of them those the grammar forced, evaluated without sampling), the prompt rate and the
decoding rate with their ratio to the ceiling. Last, the mean seconds per card and where the
decoder's time went. Run it on a quiet machine (it measures CPU): the header gives the load.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panel.cards import load_card  # noqa: E402
from panel.config import Settings  # noqa: E402
from panel.models.resolve import resolve_local_model  # noqa: E402
from panel.providers.local import loaded_model  # noqa: E402
from panel.providers.local_decode import Model, Stats  # noqa: E402
from panel.runtime import open_runtime  # noqa: E402
from panel.store import Store  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def ceiling(model: Model) -> tuple[float, float, float]:
    """Return llama.cpp's prompt rate and its decode rates at batch 1 and 4 (best of three)."""
    rates = [model.ceiling(1) for _ in range(3)] + [model.ceiling(4) for _ in range(3)]
    prompt = max(r[0] for r in rates)
    return prompt, max(r[1] for r in rates[:3]), max(r[1] for r in rates[3:])


async def bench(
    paths: list[Path], folder: Path, repeat: int, top: tuple[float, float, float], chosen: str
):
    """Review every card `repeat` times; print a line per review; return the seconds of each
    card's reviews and the decoder's totals over them."""
    settings = Settings(db=folder / "panel.db", out=folder / "out", local_model=chosen)
    store = Store(settings.db)
    runtime = open_runtime(settings, store=store)
    model = loaded_model(resolve_local_model(chosen).path)
    seconds: dict[str, list[float]] = {}
    totals = Stats()
    try:
        warm = load_card(ROOT / "examples" / "smolvlm-3b.yaml")
        await runtime.answer(runtime.plan(runtime.reviews([warm])[:1], fresh=True).planned)
        for _ in range(repeat):
            for path in paths:
                card = load_card(path)
                before, calls_before = model.stats.copy(), store.count_calls()
                started = time.perf_counter()
                reviews, errors = await runtime.review(card, fresh=True)
                took = time.perf_counter() - started
                used = model.stats.since(before)
                totals = totals.plus(used)
                calls = store.recent_calls(store.count_calls() - calls_before)
                seconds.setdefault(card.slug, []).append(took)
                line(
                    card.slug,
                    took,
                    calls,
                    used,
                    top,
                    f"{len(reviews)}/{len(reviews) + len(errors)}",
                )
    finally:
        await runtime.aclose()
        store.close()
    return seconds, totals


def floor(used: Stats, top: tuple[float, float, float]) -> float:
    """Return the seconds llama.cpp alone needs for this card's tokens: the prompt tokens
    evaluated at its prompt rate, and the tokens the steps evaluated at its batch-4 rate."""
    return used.prompt_tokens / top[0] + used.step_tokens / top[2]


def line(slug: str, took: float, calls: list, used: Stats, top, valid: str) -> None:
    prompt = sum(c.input_tokens for c in calls)
    cached = sum(c.cached_tokens for c in calls)
    wrote = sum(c.output_tokens for c in calls)
    prompt_rate = used.prompt_tokens / used.prompt_seconds if used.prompt_seconds else 0.0
    decode_seconds = used.step_seconds + used.sample_seconds
    decode_rate = wrote / decode_seconds if decode_seconds else 0.0
    least = floor(used, top)
    print(
        f"{slug[:34]:34} {took:5.1f} s (floor {least:4.1f} s, ×{took / least:.2f})  "
        f"prompt {prompt:5} ({cached:4} reused)  "
        f"wrote {wrote:4} ({used.forced:3} forced)  "
        f"prompt {prompt_rate:4.0f}/s ×{prompt_rate / top[0]:.2f}  "
        f"decode {decode_rate:4.0f}/s ×{decode_rate / top[2]:.2f} of b4  valid {valid}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cards", nargs="*", metavar="CARD")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="passes over the cards")
    parser.add_argument("--model", metavar="NAME", help="a catalogue name or a GGUF path")
    args = parser.parse_args()
    names = args.cards or sorted(glob.glob(str(ROOT / "examples" / "*.yaml")))
    chosen = resolve_local_model(args.model or os.environ.get("PANEL_LOCAL_MODEL"))
    model = loaded_model(chosen.path)
    print(
        f"panel bench-local: {chosen.name} ({chosen.path.name}), {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load {load()}"
    )
    top = ceiling(model)
    print(
        f"ceiling (llama.cpp alone, no sampling): prompt {top[0]:.0f} tokens/s; decode "
        f"{top[1]:.0f} tokens/s at batch 1, {top[2]:.0f} tokens/s at batch 4"
    )
    with tempfile.TemporaryDirectory(prefix="panel-bench-local-") as folder:
        seconds, totals = asyncio.run(
            bench([Path(n) for n in names], Path(folder), args.repeat, top, str(chosen.path))
        )
    every = [s for runs in seconds.values() for s in runs]
    print(
        f"mean {statistics.mean(every):.1f} s per card (min {min(every):.1f}, "
        f"max {max(every):.1f}) over {len(every)} panels of 4 personas"
    )
    summary(totals)
    print(f"load average at the end: {load()}")


def summary(totals: Stats) -> None:
    """Print where the decoder's time went over the whole run."""
    decoding = totals.step_seconds + totals.sample_seconds
    spent = totals.prompt_seconds + decoding
    print(
        f"decoder: {totals.prompt_seconds:.1f} s evaluating {totals.prompt_tokens} prompt tokens "
        f"({totals.prompt_tokens / max(totals.prompt_seconds, 1e-9):.0f}/s), "
        f"{decoding:.1f} s decoding {totals.steps} steps "
        f"({totals.sample_seconds / max(decoding, 1e-9):.0%} of it sampling); "
        f"{totals.sampled} tokens sampled, {totals.forced} forced, {totals.rejected} drawn and "
        f"refused by the grammar ({totals.masked} needing the whole vocabulary masked); "
        f"{spent:.1f} s in all"
    )


if __name__ == "__main__":
    main()
