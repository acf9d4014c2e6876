"""What the command line shows: one-line errors and exit codes, progress bars, scorecards, tables.

Every string printed goes through `terminal_text` first: secrets scrubbed, control characters
(escape sequences, C1) removed. Every value printed to a terminal table is rich Text, never
markup: a card, a review or a server's error may hold "[/]" or "[link=...]".
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from panel.queue.store import Progress
    from panel.runs import Ended
    from panel.spending import Estimate

T = TypeVar("T")

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 controls but tab and newline, DEL, and C1 (U+0080-U+009F, where 8-bit CSI and OSC live)."""


LONG_RUN_CALLS = 20
"""A run of more calls than this says first how many and what they may cost."""


def terminal_text(text: str) -> str:
    """Return text safe to print: secrets scrubbed, control characters removed (ESC goes, so no
    escape sequence can move the cursor, retitle the window or forge a link)."""
    from panel.errors import scrub

    return scrub(_CONTROLS.sub("", text))


def say(line: str, *, err: bool = False) -> None:
    """Print a line (stdout, or stderr when err) through terminal_text."""
    typer.echo(terminal_text(line), err=err)


def note(line: str) -> None:
    """Print a line for the user on stderr."""
    say(f"panel: {line}", err=True)


def fail(message: str, code: int) -> NoReturn:
    """Print one error line on stderr and exit with code."""
    say(f"panel: error: {message}", err=True)
    raise typer.Exit(code)


def echo_json(value: Any, *, indent: int | None = 2, ensure_ascii: bool = False) -> None:
    """Print value as JSON on stdout, for scripts (JSON escapes C0; C1 and secrets go here).
    A NaN or infinite number (a store an older panel wrote) prints as null: always valid JSON."""
    import json

    say(json.dumps(_finite(value), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False))


def _finite(value: Any) -> Any:
    """Return value with every NaN or infinite float, at any depth, replaced by None."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine (its errors reach the app's one boundary, panel.cli.app)."""
    import asyncio

    return asyncio.run(coroutine)


_warned: set[str] = set()
"""Models whose unknown price this process has named already."""


def announce(estimate: Estimate, max_cost: float | None, *, always: bool = False) -> None:
    """Before a run: name, once and only when calls are to be made, each model whose price is
    unknown; say how many calls and what cost a run of more than LONG_RUN_CALLS calls (or any,
    with always) will take."""
    from panel.providers.base import prices_read_on

    unpriced = [m for m in estimate.unpriced if m not in _warned] if estimate.calls else []
    if unpriced:
        _warned.update(unpriced)
        note(
            f"the price of {', '.join(unpriced)} is unknown (prices read {prices_read_on()}): "
            "its calls are not counted in the cost"
        )
    if estimate.calls > LONG_RUN_CALLS or always:
        budget = "" if max_cost is None else f" (ceiling ${max_cost:.4f})"
        note(estimate.line() + budget)


class Terminal:
    """What a run shows on the terminal (panel.runs.Show): its plan before it starts, progress
    bars on stderr, notes; `quiet` (--json) keeps only the lines a user must see."""

    def __init__(
        self,
        max_cost: float | None,
        *,
        quiet: bool = False,
        always_announce: bool = False,
        preface: Sequence[str] = (),
    ) -> None:
        self.max_cost = max_cost
        self.quiet = quiet
        self.always_announce = always_announce
        self.preface = preface
        """Lines said with the plan, before any call (what the run cannot tell, say)."""

    def announce(self, estimate: Estimate) -> None:
        if not self.quiet:
            for line in self.preface:
                note(line)
        announce(estimate, self.max_cost, always=self.always_announce and not self.quiet)

    def progress(self, total: int) -> ReviewProgress:
        return ReviewProgress(total, not self.quiet)

    def queue_progress(self, measure: Callable[[], Progress]) -> QueueProgress:
        return QueueProgress(measure, not self.quiet)

    def note(self, line: str) -> None:
        if not self.quiet:
            note(line)


def finish(ended: Ended) -> None:
    """Print a run's failures and the line it stopped with; exit with its code (0: return)."""
    for failure in ended.failures:
        say(f"panel: error: {failure}", err=True)
    if ended.line is not None:
        say(f"panel: error: {ended.line}", err=True)
    if ended.exit_code:
        raise typer.Exit(ended.exit_code)


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], **kw: Any
) -> None:
    """Print a table of text; columns named in kw["right"] are right-aligned."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    right = set(kw.pop("right", ()))
    table = Table(title=Text(terminal_text(title)), **kw)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*(Text(terminal_text(cell)) for cell in row))
    Console().print(table)


class ReviewProgress:
    """A progress bar on stderr while reviews run, with the time left; off a terminal, a plain
    line every PLAIN_SECONDS (none for a run shorter than that)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._done = 0
        self._started = 0.0
        self._last_line = 0.0

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda _key: None
        if not self.tty:
            self._started = self._last_line = time.monotonic()
            return self._plain
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("reviewing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("reviews", total=self.total)
        return lambda _key: self._bar.advance(task)

    def _plain(self, _key: str) -> None:
        self._done += 1
        now = time.monotonic()
        if now - self._last_line < PLAIN_SECONDS or self._done >= self.total:
            return
        self._last_line = now
        elapsed = now - self._started
        left = elapsed / self._done * (self.total - self._done)
        note(
            f"reviewing: {self._done}/{self.total} answers, {_duration(elapsed)} so far, "
            f"about {_duration(left)} left"
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()


class ByteProgress:
    """A bar of bytes on stderr for a long step (a download, a check), its label changing with
    the step; off a terminal, a line at most every LINE_SECONDS once bytes have moved (a step
    that fails at once prints nothing but its error)."""

    LINE_SECONDS = 10.0

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_line: float | None = None

    def __enter__(self) -> Callable[[str, int, int | None], None]:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=None)
        return self.show

    def show(self, what: str, done: int, total: int | None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=what, completed=done, total=total)
            return
        now = time.monotonic()
        if done and (self._last_line is None or now - self._last_line >= self.LINE_SECONDS):
            self._last_line = now
            of = f" of {total / 1e6:,.1f}" if total else ""
            note(f"{what}: {done / 1e6:,.1f}{of} MB")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


PLAIN_SECONDS = 10.0
"""How often a run off a terminal says how far it is."""


def _duration(seconds: float) -> str:
    """Return seconds as "45 s" or "4 min 43 s"."""
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


MEASURE_SECONDS = 0.25
"""How often the queue's progress is read from the store while it runs."""


class QueueProgress:
    """A live bar of jobs with done, failed, calls, tokens and ETA; plain lines off a terminal."""

    def __init__(self, measure: Callable[[], Progress], enabled: bool) -> None:
        self.measure = measure
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.calls = 0
        self.tokens = 0
        self.total = 0
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0
        self._measured_at = 0.0

    def _measure(self) -> tuple[int, int]:
        self._measured_at = time.monotonic()
        progress = self.measure()
        self.calls, self.tokens, self.total = progress.calls, progress.tokens, progress.total
        return progress.done, progress.failed

    def __enter__(self) -> Callable[[str], None]:
        done, _ = self._measure()
        if self.enabled and self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("comparisons"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task("jobs", total=self.total, completed=done, detail="")
        return lambda _key: self.update()

    def update(self) -> None:
        """Show the queue's progress, measured at most every MEASURE_SECONDS (each measure is a
        query on the store, which many workers may share)."""
        if not self.enabled or time.monotonic() - self._measured_at < MEASURE_SECONDS:
            return
        self._show()

    def _show(self) -> None:
        done, failed = self._measure()
        detail = f"failed {failed} · calls {self.calls} · tokens {self.tokens}"
        if self._bar is not None:
            self._bar.update(self._task, completed=done + failed, total=self.total, detail=detail)
        elif time.monotonic() - self._last_line >= 2 or done + failed == self.total:
            self._last_line = time.monotonic()
            say(f"queue: {done + failed}/{self.total} · done {done} · {detail}", err=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._show()
        else:
            self._measure()
        if self._bar is not None:
            self._bar.stop()


def print_scorecard(document: dict[str, Any]) -> None:
    """Print a review document (panel.review/1) as a table, the panel line and its flags."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    tool = document["tool"]
    result = document["panel"]
    table = Table(
        title=Text(terminal_text(f"{tool['name']} — {tool['tagline']}")),
        show_lines=True,
        title_justify="left",
    )
    table.add_column("Persona", style="bold")
    table.add_column("Score", justify="right")
    table.add_column("Verdict")
    table.add_column("Review")
    for r in document["reviews"]:
        style = "green" if r["verdict"] == "ship" else "red"
        verdict = r["verdict"] + (f"\nsplit {r['split']}" if r.get("split") else "")
        table.add_row(
            Text(terminal_text(r["display_name"])),
            f"{r['score']}/100" if r.get("score_sd") is None else r["score_label"],
            Text(terminal_text(verdict), style=style),
            Text(terminal_text(r["review"])),
        )
    console = Console()
    console.print(table)
    if result["reviews"]:
        console.print(
            Text.assemble(
                "Panel: ",
                (terminal_text(result["label"]), "bold"),
                f" · {result['ship_pct']}% panel ship{_interval(result)} · "
                f"mean score {result['score_mean']} "
                f"(min {result['score_min']}, max {result['score_max']})",
            ),
            soft_wrap=True,
        )
    for flag in result["flags"]:
        console.print(
            Text.assemble(("Flag: ", "bold yellow"), terminal_text(flag["message"])), soft_wrap=True
        )
    judge = document.get("judge")
    if judge and result["reviews"]:
        console.print(Text(terminal_text(judge["line"]), style="dim"), soft_wrap=True)
        if judge["notice"]:
            console.print(
                Text.assemble(("Demo: ", "bold yellow"), terminal_text(judge["notice"])),
                soft_wrap=True,
            )
    console.print()


def _interval(result: dict[str, Any]) -> str:
    """Return " (90% interval 50–100%)" for a panel with several samples, else ""."""
    interval = result.get("ship_pct_interval")
    return "" if not interval else f" (90% interval {interval[0]}–{interval[1]}%)"
