"""The runs: what `panel review`, `compare`, `eval` and `queue run` do, one module each, on one
path.

Every run asks the runtime for its plan (the reviews it needs and the calls still to make, from
what is stored), announces it, shows progress whose total comes from the plan, makes the calls
through the runtime and says how it ended: done, failed, or stopped by the --max-cost ceiling.
A run shows things through a `Show` its caller gives (the command line's output module), and
prints nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from panel.runtime import Plan, Runtime
from panel.spending import Estimate

if TYPE_CHECKING:
    from panel.queue.store import Progress

Tick = Callable[[str], None]
"""Called with the persona's key each time one planned answer is done (stored or made)."""


class Show(Protocol):
    """What a run shows its user while it runs."""

    def announce(self, estimate: Estimate) -> None:
        """Say, before any call, what the plan's calls will take (a long run's cost, models
        whose price is unknown)."""

    def progress(self, total: int) -> AbstractContextManager[Tick]:
        """Show progress towards `total` answers while the calls run."""

    def queue_progress(self, measure: Callable[[], Progress]) -> AbstractContextManager[Tick]:
        """Show the queue's progress, as `measure` reads it from the store (every worker's, on
        every machine), each time the tick is called."""

    def note(self, line: str) -> None:
        """Tell the user something while the run goes on."""


class Ending(StrEnum):
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    """by the --max-cost ceiling: what was done is kept, the rest waits for a later run."""


EXIT_CODES = {Ending.DONE: 0, Ending.FAILED: 1, Ending.STOPPED: 3}


@dataclass(frozen=True)
class Ended:
    """How a run ended: its ending, a line for each failure, and the line it stopped with."""

    ending: Ending = Ending.DONE
    failures: list[str] = field(default_factory=list)
    line: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.ending]


def ended(failures: list[str], stopped: str | None = None) -> Ended:
    """Return how a run ended from its failures and, if the ceiling stopped it, its line."""
    if stopped is not None:
        return Ended(Ending.STOPPED, failures, stopped)
    return Ended(Ending.FAILED if failures else Ending.DONE, failures)


@contextmanager
def carrying_out(
    runtime: Runtime,
    plan: Plan,
    show: Show,
    progress: AbstractContextManager[Tick] | None = None,
) -> Iterator[Tick]:
    """Announce the plan (refused here if a ceiling cannot be kept), then show its progress
    while the caller makes its calls: the one way every run starts. The progress counts the
    plan's answers unless another is given (the queue's, read from the store)."""
    show.announce(runtime.estimate(plan))
    with progress or show.progress(plan.answers) as tick:
        yield tick


def refresh(
    runtime: Runtime, tools: Iterable[str] = (), pairs: Iterable[Iterable[str]] = ()
) -> dict[str, int] | None:
    """Bring the site in the run's output folder up to date with what the run stored: the pages
    that show the tools whose reviews it stored and the pairs it compared or judged (None: no
    site there, `panel site build` makes one)."""
    from panel.site import Changed, refresh_site  # the pages' templates load only when a run ends

    settings = runtime.settings
    changed = Changed(frozenset(tools), frozenset(frozenset(pair) for pair in pairs))
    return refresh_site(settings.db, runtime.site_personas(), settings.out, changed)
