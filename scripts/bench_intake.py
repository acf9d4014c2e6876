"""How well `panel card` reads real launch pages: per field, against hand-written expected cards.

    .venv/bin/python scripts/bench_intake.py [--model NAME] [--corpus DIR] [--json]

The corpus is examples/intake/ (pages/<slug>.<html|md|txt>, expected/<slug>.yaml with the
expected name, maker, licence, entry and the claims the page supports; SOURCES.md says where
each page was saved from). The pages are served by a loopback HTTP server and each is read into
a card by what `panel card URL --allow-private` runs (panel.intake.card_from, in this process:
one model load for the whole corpus), into a store of its own (nothing reused between runs).

The reader is the loopback fake of panel/testing/fakes/reader.py (a capable model answering
from the page, served as an OpenAI-compatible server) unless --model names an embedded model
(tiny, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b: a quiet machine, it loads the model).

Printed, per field, over the pages:
- exact: name, maker, licence and entry price as the card gives them (a field left out is
  "Unknown"), equal to the expected value or one of its `accept:` alternatives, compared as
  panel.sources.normalised spells them (case, spaces and punctuation aside); a page panel
  refused (another language) counts as a miss for each field;
- invented claims: descriptions (and taglines) holding a number or proper noun the page's text
  and metadata do not (panel.sources.unsupported_terms: words with a capital not opening a
  sentence, or with a digit or an inner capital), after panel's check; and how many readings
  had such a sentence left out by that check (what the model invented before it);
- seconds per page (fetch, read, model call, checks), median and slowest.

Figures, not a test: docs/intake.md keeps them with their date and command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's panel

from panel.config import Settings  # noqa: E402
from panel.errors import PanelError  # noqa: E402
from panel.intake import Intake, card_from  # noqa: E402
from panel.runtime import open_runtime  # noqa: E402
from panel.sources import licence_id, normalised, unsupported_terms  # noqa: E402
from panel.testing.fakes.openai import FakeOpenAI  # noqa: E402
from panel.testing.fakes.reader import PageServer, read_pages  # noqa: E402

FIELDS = {"name": "name", "maker": "maker", "licence": "license", "entry": "entry"}
"""The fields compared exactly: the expected card's name for each, and the card's."""


def same(got: str | None, expected: Any, accepted: list[Any]) -> bool:
    """Return whether a card's value is the expected one or an accepted alternative
    ("Unknown" where the card left the field out)."""
    said = normalised(got or "Unknown")
    for wanted in [expected, *accepted]:
        wanted = str(wanted)
        if said == normalised(wanted):
            return True
        spdx = licence_id(wanted)
        if spdx is not None and got is not None and spdx == licence_id(got):
            return True
    return False


def settings_for(model: str | None, db: Path, llm: FakeOpenAI | None) -> Settings:
    if model is not None:
        return Settings(provider="local", local_model=model, db=str(db), allow_private=True)
    assert llm is not None
    return Settings(
        provider="openai",
        model="fake-reader",
        base_url=llm.base_url,
        db=str(db),
        allow_private=True,
    )


async def read_all(settings: Settings, urls: dict[str, str]) -> dict[str, Intake | str | float]:
    """Return each page's intake (or the line it was refused with), and its seconds."""
    found: dict[str, Any] = {}
    runtime = open_runtime(settings)
    try:
        for slug, url in urls.items():
            started = time.perf_counter()
            try:
                found[slug] = await card_from(runtime, url)
            except PanelError as exc:
                found[slug] = str(exc)
            found[f"{slug}:seconds"] = time.perf_counter() - started
    finally:
        await runtime.aclose()
    return found


def measure(corpus: Path, found: dict[str, Any]) -> dict[str, Any]:
    """Return the figures of a run: per field, per page, invented claims and times."""
    pages: list[dict[str, Any]] = []
    for expected_path in sorted((corpus / "expected").glob("*.yaml")):
        slug = expected_path.stem
        expected = yaml.safe_load(expected_path.read_text(encoding="utf-8"))
        intake = found.get(slug)
        accept = expected.get("accept") or {}
        row: dict[str, Any] = {"page": slug, "seconds": round(found[f"{slug}:seconds"], 3)}
        if not isinstance(intake, Intake):
            row |= {"refused": intake} | {field: False for field in FIELDS}
            pages.append(row)
            continue
        card = intake.card
        for field, attribute in FIELDS.items():
            got = getattr(card, attribute)
            row[field] = same(got, expected.get(field, "Unknown"), accept.get(field, []))
            row[f"{field}_got"] = got or "Unknown"
        invented = unsupported_terms(f"{card.tagline} {card.description}", intake.page)
        row |= {"invented": invented, "left_out": intake.dropped}
        pages.append(row)
    count = len(pages)
    read = [p for p in pages if "refused" not in p]
    seconds = [p["seconds"] for p in read] or [0.0]
    return {
        "pages": count,
        "refused": [f"{p['page']}: {p['refused']}" for p in pages if "refused" in p],
        "exact": {f: sum(bool(p[f]) for p in pages) for f in FIELDS},
        "invented": sum(bool(p["invented"]) for p in read),
        "left_out": sum(p["left_out"] > 0 for p in read),
        "seconds_median": round(statistics.median(seconds), 3),
        "seconds_max": round(max(seconds), 3),
        "per_page": pages,
    }


def report(figures: dict[str, Any], reader: str) -> None:
    n = figures["pages"]
    print(f"panel card on {n} saved launch pages, read by {reader}")
    for field, right in figures["exact"].items():
        print(f"  {field:8} exact {right}/{n} ({right / n:.0%})")
    read = n - len(figures["refused"])
    print(
        f"  descriptions with an invented claim (after panel's check): "
        f"{figures['invented']}/{read}; readings with a sentence left out for one: "
        f"{figures['left_out']}/{read}"
    )
    print(
        f"  seconds per page: median {figures['seconds_median']}, slowest {figures['seconds_max']}"
    )
    for line in figures["refused"]:
        print(f"  refused: {line}")
    for page in figures["per_page"]:
        misses = [
            f"{field}={page.get(f'{field}_got', '-')!r}" for field in FIELDS if not page[field]
        ]
        if misses and "refused" not in page:
            print(f"    {page['page']}: " + ", ".join(misses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an embedded model (default: the loopback fake reader)")
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "intake")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    pages_dir = args.corpus / "pages"
    if not pages_dir.is_dir():
        raise SystemExit(f"no corpus at {args.corpus} (pages/ and expected/)")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        server = stack.enter_context(PageServer.of_folder(pages_dir))
        llm = None if args.model else stack.enter_context(FakeOpenAI(content=read_pages))
        urls = {p.stem: f"{server.url}/{p.name}" for p in sorted(pages_dir.iterdir())}
        settings = settings_for(args.model, Path(tmp) / "bench.db", llm)
        found = asyncio.run(read_all(settings, urls))
    figures = measure(args.corpus, found)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures, args.model or "the loopback fake reader (panel/testing/fakes/reader.py)")


if __name__ == "__main__":
    main()
