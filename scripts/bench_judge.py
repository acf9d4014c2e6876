"""How well an embedded model judges: real launches, reviewed and judged two by two in both orders.

    .venv/bin/python scripts/bench_judge.py --model NAME [--db DIR] [--categories a,b] [--json]

The labelled set is examples/launches/ (24 real AI tool launches in six categories, four each,
their GitHub stars on one date as the outcome; its README gives the sources). For each category
every card is reviewed by the four personas (`panel review`) and every two cards are judged side
by side in both orders (`panel compare --pairwise`), all through panel's own commands into a store
of this model's (so a second run reuses every answer and makes no call). Then it prints, against
the stars, within each category:

- position consistency: the share of persona judgments whose two orders agree (sampled answers);
- pairwise accuracy of four picks: the sampled answers', the one read from the probabilities
  (both orders combined), the mean sampled scores' and the mean expected scores' (no pick: half);
- Spearman's rho of the mean sampled score and of the mean expected score with the stars;
- the spread of the scores (sd of a card's mean score, and of every persona's score);
- the lean towards the card shown first, read from the probabilities.

With --probes CARD... it also runs `panel eval` on those cards in the same store, without and
with the mitigations rotate-fields, blind-names and strip-injection, and prints each probe's
mean score change beside the null (the same card asked again) and what the eval reads from it.

Figures, not a test: docs/trust-and-eval.md keeps them with their date and command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAUNCHES = ROOT / "examples" / "launches"


def panel(*args: str, env: dict[str, str]) -> dict[str, Any]:
    """Run a panel command with --json and return what it printed; an empty document where a
    comparison could not be made (a review its model could not give: the failure is kept)."""
    done = subprocess.run(
        [sys.executable, "-m", "panel", *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
    )
    if args[0] == "compare" and done.returncode == 1 and not done.stdout.strip():
        FAILURES.append(done.stderr.strip().splitlines()[-1])
        return {}
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"panel {' '.join(args[:2])} failed: {done.stderr.strip()[-400:]}")
    if done.returncode == 1:  # a review that failed: the rest of the panel is reported
        FAILURES.append(done.stderr.strip().splitlines()[-1])
    found: dict[str, Any] = json.loads(done.stdout)
    return found


FAILURES: list[str] = []
"""The last line of every panel command that reported a failed answer."""


def categories(only: list[str]) -> dict[str, list[Path]]:
    grouped: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(LAUNCHES.glob("*.yaml")):
        grouped[path.name.split("-")[0]].append(path)
    return {k: v for k, v in grouped.items() if not only or k in only}


def stars(path: Path) -> float:
    for line in path.read_text().splitlines():
        if line.startswith("outcome:"):
            return float(line.split(":", 1)[1])
    raise SystemExit(f"{path}: no outcome")


def spearman(xs: list[float], ys: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(spearmanr(xs, ys).statistic)


def credit(pick: str | None, better: str) -> float:
    return 0.5 if pick is None else 1.0 if pick == better else 0.0


def by_mean(a: float | None, b: float | None) -> str | None:
    if a is None or b is None or a == b:
        return None
    return "a" if a > b else "b"


def measure(model: str, db: Path, only: list[str]) -> dict[str, Any]:
    env = {"PANEL_LOCAL_MODEL": model, "PANEL_DB": str(db / "panel.db"), "PANEL_OUT": str(db)}
    picks: dict[str, list[float]] = defaultdict(list)
    agreements: list[bool] = []
    leans: list[float] = []
    rhos: dict[str, list[float]] = defaultdict(list)
    means, persona_scores = [], []
    started = time.perf_counter()
    for name, paths in categories(only).items():
        docs = panel("review", *map(str, paths), env=env)
        docs_list = docs if isinstance(docs, list) else [docs]
        by_slug = {d["tool"]["slug"]: d for d in docs_list}
        slugs = [d["tool"]["slug"] for d in docs_list]  # in the order of the paths
        star = [stars(p) for p in paths]
        for key in ("score_mean", "expected_mean"):
            values = [by_slug[s]["panel"][key] for s in slugs]
            if None not in values:
                rho = spearman(values, star)
                if rho is not None:
                    rhos[key].append(rho)
        means += [by_slug[s]["panel"]["score_mean"] for s in slugs]
        persona_scores += [r["score"] for d in docs_list for r in d["reviews"]]
        for a, b in itertools.combinations(paths, 2):
            document = panel("compare", str(a), str(b), "--pairwise", env=env)
            if not document:  # not judged: a review failed (see FAILURES)
                continue
            better = "a" if stars(a) > stars(b) else "b"
            pairwise = document["head_to_head"]["pairwise"]
            read = pairwise.get("probabilities")
            answers = "a" if pairwise["a_wins"] > pairwise["b_wins"] else None
            answers = "b" if pairwise["b_wins"] > pairwise["a_wins"] else answers
            picks["answers"].append(credit(answers, better))
            picks["probabilities"].append(credit(read and read["pick"], better))
            panels = document["a"]["panel"], document["b"]["panel"]
            picks["mean score"].append(credit(by_mean(*(p["score_mean"] for p in panels)), better))
            expected = by_mean(*(p.get("expected_mean") for p in panels))
            picks["expected score"].append(credit(expected, better))
            for persona in pairwise["personas"]:
                orders = persona["orders"]
                if None not in orders:
                    agreements.append(orders[0] == orders[1])
                if persona.get("probabilities"):
                    leans.append(persona["probabilities"]["position_lean"])
        print(f"  {name}: {len(paths)} cards judged ({time.perf_counter() - started:.0f} s)")
    return {
        "model": model,
        "pairs": len(picks["answers"]),
        "position_consistency": share(agreements),
        "accuracy": {k: round(statistics.fmean(v), 3) for k, v in picks.items()},
        "spearman": {k: round(statistics.fmean(v), 2) for k, v in rhos.items()},
        "score_sd": {
            "card_means": round(statistics.pstdev(means), 1),
            "persona_scores": round(statistics.pstdev(persona_scores), 1),
        },
        "position_lean": round(statistics.fmean(leans), 3) if leans else None,
        "seconds": round(time.perf_counter() - started),
        "failures": FAILURES,
    }


MITIGATIONS = "rotate-fields,blind-names,strip-injection"


def probes(model: str, db: Path, cards: list[str]) -> dict[str, Any]:
    """Run panel eval on cards without and with the mitigations; return each probe's figures."""
    env = {"PANEL_LOCAL_MODEL": model, "PANEL_DB": str(db / "panel.db"), "PANEL_OUT": str(db)}
    document = panel("eval", *cards, "--mitigations", MITIGATIONS, env=env)
    found: dict[str, Any] = {"cards": len(document["cards"]), "headline": document["headline"]}
    for name, row in document["mitigations"]["probes"].items():
        found[name] = {
            when: {
                "mean_delta": side["mean_delta"],
                "flip_rate": side["flip_rate"],
                "beyond_noise": (side.get("beyond_noise") or {}).get("mean_delta"),
                "reading": side["reading"],
            }
            for when, side in row.items()
        }
    return found


def share(found: list[bool]) -> float | None:
    return round(sum(found) / len(found), 3) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a catalogue name or a GGUF path")
    parser.add_argument("--db", type=Path, help="the store's folder (default: a new one)")
    parser.add_argument("--categories", default="", help="file prefixes, e.g. serving,coding")
    parser.add_argument(
        "--probes",
        nargs="*",
        default=None,
        metavar="CARD",
        help="also run panel eval's probes on these cards or folders",
    )
    parser.add_argument("--skip-launches", action="store_true", help="only the probes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = args.db or Path(f"/tmp/panel-bench-judge-{Path(args.model).stem}")
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"panel bench-judge: {args.model}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.2f}, store {folder}"
    )
    result: dict[str, Any] = {"model": args.model}
    if not args.skip_launches:
        result = measure(args.model, folder, [c for c in args.categories.split(",") if c])
    if args.probes is not None:
        result["probes"] = probes(args.model, folder, args.probes or ["examples"])
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, row in result.get("probes", {}).items():
        if isinstance(row, dict):
            print(f"probe {name}: " + "; ".join(f"{when} {v}" for when, v in row.items()))
    if args.skip_launches:
        return
    print(f"pairs judged: {result['pairs']} (each by 4 personas in both orders)")
    print(f"position consistency (sampled answers): {result['position_consistency']}")
    for view, value in result["accuracy"].items():
        print(f"pairwise accuracy against the stars, {view}: {value}")
    for key, value in result["spearman"].items():
        print(f"mean Spearman rho within a category, {key}: {value}")
    print(
        f"score sd: {result['score_sd']}; lean to the card shown first: {result['position_lean']}"
    )
    for failure in result["failures"]:
        print(f"failed: {failure}")
    print(f"{result['seconds']} s")


if __name__ == "__main__":
    main()
