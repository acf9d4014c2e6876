"""How long `panel --help` takes next to `python -c "import typer"`, measured in one run.

Each command runs --runs times, the two interleaved so that both see the same machine; the
medians and their ratio are printed. The target is a ratio of 2 or less: the command line should
cost little more than the library it is written with. (A test counts the modules --help imports;
times are only measured here.)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

PANEL = Path(sys.executable).with_name("panel")


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    commands = {
        "panel --help": [str(PANEL), "--help"],
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(seconds(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:28} median {median * 1000:6.1f} ms over {runs} runs")
    help_s, typer_s = medians.values()
    print(f"ratio {help_s / typer_s:.2f} (target: 2 or less)")


if __name__ == "__main__":
    main()
