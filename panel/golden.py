"""Golden cases: recorded model answers replayed through the whole pipeline, outputs compared.

A case is a folder:

    case.yaml        optional: {cards: [...], import: records.jsonl, compare: [slug_a, slug_b]}
    cards/*.yaml     the tool cards (default: every card in cards/)
    cassettes/       recorded answers (`panel golden record CASE`)
    expected/        <slug>.json review documents, compare.md and compare.html if the case compares

`check` replays the cassettes into a scratch store, renders, and reports what moved: which
persona, old and new score and verdict, and a short diff. A persona whose prompt changed has no
recording any more; the report names it and the command that re-records the case.

A case reads files only inside its own folder (a card or import named `../private/card.yaml`,
an absolute path or a link out of it is refused: `record` would send it to a provider and write
it into the cassettes). `record` and `update` hold the case's lock while they work, so two of
them on one case cannot leave `expected/` of one and `cassettes/` of the other.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from panel.cards import load_card
from panel.config import Settings
from panel.errors import AnswerError, ConfigError, InputError, validation_problem
from panel.files import json_text, read_capped, write_atomic
from panel.parsing import ParseError, load_yaml
from panel.results import tool_document
from panel.runtime import open_runtime

FROZEN_TIME = "2000-01-01T00:00:00+00:00"
"""Every timestamp in a golden output, so outputs depend only on inputs and answers."""
DIFF_LINES = 24
MAX_CASE_BYTES = 64 * 1024
MAX_EXPECTED_BYTES = 16 * 2**20


class CaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cards: list[str] | None = None
    compare: tuple[str, str] | None = None
    import_: str | None = None


@dataclass
class Outcome:
    """What a golden check found: rendered files by name, and problems in words."""

    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _spec(case: Path) -> CaseSpec:
    path = case / "case.yaml"
    if not case.is_dir():
        raise ConfigError("golden case folder not found", path=str(case))
    if not path.is_file():
        return CaseSpec()
    try:
        data = load_yaml(read_capped(path, MAX_CASE_BYTES, "case.yaml").decode("utf-8")) or {}
    except (InputError, ParseError, UnicodeDecodeError) as exc:
        problem = exc.message if isinstance(exc, InputError) else str(exc)
        raise ConfigError(problem, path=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping (cards, compare, import)", path=str(path))
    if "import" in data:
        data["import_"] = data.pop("import")
    try:
        return CaseSpec.model_validate(data)
    except ValidationError as exc:
        field, problem = validation_problem(exc)
        raise ConfigError(problem, path=str(path), field=field) from None


def _card_paths(case: Path, spec: CaseSpec) -> list[Path]:
    if spec.cards is not None:
        return [_inside(case, name, "cards") for name in spec.cards]
    found = sorted((case / "cards").glob("*.y*ml")) + sorted((case / "cards").glob("*.json"))
    return [_inside(case, str(path.relative_to(case)), "cards") for path in found]


def _inside(case: Path, name: str, field: str) -> Path:
    """Return the file `name` of a case, or raise ConfigError if it lies outside the case's
    folder (an absolute path, `..`, or a link that leads out)."""
    path = case / name
    if not path.resolve().is_relative_to(case.resolve()):
        raise ConfigError(
            f"'{name}' is outside the case's folder (a case reads only its own files)",
            path=str(case / "case.yaml"),
            field=field,
        )
    return path


@contextlib.contextmanager
def _locked(case: Path) -> Iterator[None]:
    """Hold the case's lock (an exclusive flock of its folder) for the block, or raise
    ConfigError at once if another `golden record` or `update` holds it."""
    if not case.is_dir():
        raise ConfigError("golden case folder not found", path=str(case))
    fd = os.open(case, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                "another `panel golden record` or `update` is working on this case; "
                "run again when it has finished",
                path=str(case),
            ) from None
        yield
    finally:
        os.close(fd)  # closing the folder releases the lock (a killed process's too)


_TIMESTAMPS = {"created_at", "generated_at", "reviewed_from", "reviewed_to"}


def freeze(value: Any) -> Any:
    """Return value with every timestamp (at any depth) replaced by FROZEN_TIME."""
    if isinstance(value, dict):
        return {k: FROZEN_TIME if k in _TIMESTAMPS and v else freeze(v) for k, v in value.items()}
    if isinstance(value, list):
        return [freeze(item) for item in value]
    return value


def _dump(document: dict[str, Any]) -> str:
    return json_text(document)


async def render_case(case: Path, base: Settings, cassettes: Path | None = None) -> Outcome:
    """Replay case's cassettes (or those in `cassettes`) into a scratch store and return the
    rendered outputs."""
    from panel import pages

    spec = _spec(case)
    outcome = Outcome()
    cassettes = cassettes or case / "cassettes"
    with tempfile.TemporaryDirectory(prefix="panel-golden-") as scratch:
        settings = base.model_copy(
            update={
                "provider": "replay",
                "model": None,
                "cassettes": cassettes,
                "record": None,
                "db": Path(scratch) / "panel.db",
                "out": Path(scratch) / "out",
            }
        )
        cassettes.mkdir(exist_ok=True)
        runtime = open_runtime(settings)
        try:
            if spec.import_:
                runtime.import_records(_inside(case, spec.import_, "import"))
            documents: dict[str, dict[str, Any]] = {}
            for path in _card_paths(case, spec):
                card = load_card(path)
                reviews, errors = await runtime.review(card)
                for persona, error in errors.items():
                    # A recorded invalid answer is part of the output; anything else is a problem.
                    if not isinstance(error, AnswerError):
                        outcome.problems.append(f"{case.name}: {card.slug}: {persona}: {error}")
                documents[card.slug] = tool_document(card, reviews, runtime.personas, errors)
            for slug in {s for s in spec.compare or ()} - set(documents):
                stored = runtime.tool(slug)
                if stored is None:
                    raise ConfigError(
                        f"compare names unknown tool '{slug}'", path=str(case / "case.yaml")
                    )
                reviews = runtime.latest_reviews(slug)
                documents[slug] = tool_document(stored, reviews, runtime.personas)
            for slug, document in sorted(documents.items()):
                outcome.files[f"{slug}.json"] = _dump(freeze(document))
            if spec.compare:
                a, b = (documents[s] for s in spec.compare)
                compared = freeze(runtime.comparison_of(a, b))
                outcome.files["compare.json"] = _dump(compared)
                outcome.files["compare.md"] = pages.compare_markdown(compared)
                outcome.files["compare.html"] = pages.without_stylesheet(
                    pages.compare_html(compared)
                )
        finally:
            await runtime.aclose()
    return outcome


def _moved(name: str, old: str, new: str) -> list[str]:
    """Return, for a review document, which personas' scores or verdicts moved."""
    if not name.endswith(".json") or name.startswith("compare"):
        return []
    try:
        before = {r["persona"]: r for r in json.loads(old)["reviews"]}
        after = {r["persona"]: r for r in json.loads(new)["reviews"]}
    except (ValueError, KeyError):
        return []
    lines = []
    for persona in sorted(set(before) | set(after)):
        was, now = before.get(persona), after.get(persona)
        if was is None or now is None:
            lines.append(f"{persona}: {'added' if was is None else 'missing'}")
        elif (was["score"], was["verdict"]) != (now["score"], now["verdict"]):
            lines.append(
                f"{persona}: {was['score']} {was['verdict']} -> {now['score']} {now['verdict']}"
            )
        elif was != now:
            lines.append(f"{persona}: same score and verdict, review text or fields changed")
    return lines


async def check_case(case: Path, base: Settings) -> list[str]:
    """Return what differs between case's expected outputs and a replay (empty: all good)."""
    outcome = await render_case(case, base)
    problems = list(outcome.problems)
    expected_dir = case / "expected"
    expected = (
        {
            p.name: read_capped(p, MAX_EXPECTED_BYTES, "expected output").decode("utf-8", "replace")
            for p in expected_dir.glob("*")
        }
        if expected_dir.is_dir()
        else {}
    )
    for name in sorted(set(expected) | set(outcome.files)):
        old, new = expected.get(name), outcome.files.get(name)
        if old == new:
            continue
        if old is None or new is None:
            problems.append(
                f"{case.name}: {name}: {'not expected' if old is None else 'not produced'}"
            )
            continue
        moved = _moved(name, old, new)
        diff = list(
            difflib.unified_diff(
                old.splitlines(), new.splitlines(), f"expected/{name}", "replayed", lineterm="", n=1
            )
        )
        shown = "\n    ".join(diff[:DIFF_LINES]) + ("\n    ..." if len(diff) > DIFF_LINES else "")
        problems.append(
            f"{case.name}: {name} changed"
            + (": " + "; ".join(moved) if moved else "")
            + "\n    "
            + shown
        )
    if problems:
        problems.append(
            f"to re-record the model answers: panel golden record {case}; "
            f"to accept the new outputs as they are: panel golden update {case}"
        )
    return problems


def _aside(case: Path, name: str) -> Path:
    """Return a new hidden folder in case where `name` is made before it replaces the real one."""
    return Path(tempfile.mkdtemp(dir=case, prefix=f".{name}.new-"))


def _swap_in(new: Path, target: Path) -> None:
    """Put folder new in target's place (two renames); the old target is removed after."""
    old = target.with_name(f".{target.name}.old-{new.name.rsplit('-', 1)[-1]}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


async def update_case(case: Path, base: Settings) -> list[str]:
    """Re-render case's expected outputs from its cassettes; return the replay problems. The new
    outputs are written aside and swapped in whole, under the case's lock."""
    with _locked(case):
        return await _update(case, base)


async def _update(case: Path, base: Settings, cassettes: Path | None = None) -> list[str]:
    """Re-render case's expected outputs from its cassettes (or `cassettes`); the caller holds
    the case's lock."""
    outcome = await render_case(case, base, cassettes)
    expected = _aside(case, "expected")
    try:
        for name, text in outcome.files.items():
            write_atomic(expected / name, text)
        _swap_in(expected, case / "expected")
    finally:
        shutil.rmtree(expected, ignore_errors=True)
    return outcome.problems


async def record_case(case: Path, base: Settings) -> list[str]:
    """Record fresh answers for every card of case from base's provider, then update expected.

    Recording happens aside: the committed cassettes and expected outputs are replaced only
    when every call succeeded, so a failed or interrupted record leaves every file as it was.
    The case's lock is held throughout (see _locked).
    """
    with _locked(case):
        return await _record(case, base)


async def _record(case: Path, base: Settings) -> list[str]:
    spec = _spec(case)
    cards = _card_paths(case, spec)  # refused before any call if one lies outside the case
    cassettes = _aside(case, "cassettes")
    try:
        with tempfile.TemporaryDirectory(prefix="panel-record-") as scratch:
            settings = base.model_copy(
                update={"record": cassettes, "db": Path(scratch) / "panel.db"}
            )
            runtime = open_runtime(settings)
            try:
                for path in cards:
                    _, errors = await runtime.review(load_card(path), fresh=True)
                    failed = {p: e for p, e in errors.items() if not isinstance(e, AnswerError)}
                    if failed:
                        return [f"{case.name}: {path.name}: {p}: {e}" for p, e in failed.items()]
            finally:
                await runtime.aclose()
        problems = await _update(case, base, cassettes)
        _swap_in(cassettes, case / "cassettes")
        return problems
    finally:
        shutil.rmtree(cassettes, ignore_errors=True)
