"""Seconds per card of a full panel on the embedded model: the figure `make bench-local` prints.

    .venv/bin/python scripts/bench_local.py [CARD ...]   (default: examples/*.yaml)

Each card is reviewed by the four personas in one process, into a fresh store, as `panel review`
does (the model loads once, before the clock starts). Prints per card the seconds, the prompt
tokens the model evaluated and those it reused from the card's shared prefix, the tokens it wrote
and their rate; then the mean seconds per card. Run it on a quiet machine: it measures CPU.
"""

from __future__ import annotations

import asyncio
import glob
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panel.cards import load_card  # noqa: E402
from panel.config import Settings  # noqa: E402
from panel.runtime import open_runtime  # noqa: E402
from panel.store import Store  # noqa: E402


async def bench(paths: list[Path], folder: Path) -> list[float]:
    """Review every card once; print a line per card; return the seconds of each."""
    settings = Settings(db=folder / "panel.db", out=folder / "out")
    store = Store(settings.db)
    runtime = open_runtime(settings, store=store)
    seconds = []
    try:
        warm = load_card(ROOT / "examples" / "smolvlm-3b.yaml")
        await runtime.review(warm, personas=runtime.personas[:1], fresh=True)  # loads the model
        for path in paths:
            card = load_card(path)
            before = store.count_calls()
            started = time.perf_counter()
            reviews, errors = await runtime.review(card, fresh=True)
            took = time.perf_counter() - started
            calls = store.recent_calls(store.count_calls() - before)
            prompt = sum(c.input_tokens for c in calls)
            cached = sum(c.cached_tokens for c in calls)
            wrote = sum(c.output_tokens for c in calls)
            seconds.append(took)
            print(
                f"{card.slug:40} {took:5.1f} s  {len(calls)} calls  prompt {prompt:5} tokens "
                f"({cached} reused)  wrote {wrote:4} ({wrote / took:4.1f}/s)  "
                f"valid {len(reviews)}/{len(reviews) + len(errors)}"
            )
    finally:
        await runtime.aclose()
        store.close()
    return seconds


def main() -> None:
    names = sys.argv[1:] or sorted(glob.glob(str(ROOT / "examples" / "*.yaml")))
    with tempfile.TemporaryDirectory(prefix="panel-bench-local-") as folder:
        seconds = asyncio.run(bench([Path(n) for n in names], Path(folder)))
    print(
        f"mean {statistics.mean(seconds):.1f} s per card (min {min(seconds):.1f}, "
        f"max {max(seconds):.1f}) over {len(seconds)} cards, 4 personas each"
    )


if __name__ == "__main__":
    main()
