"""The eval against judges whose bias is known (loopback OpenAI-compatible servers), through the
command line: each probe read against the null probe `repeat`, and each mitigation measured
before and after on the judge built to have the bias it takes away. A mitigation that did
nothing would leave its bias flagged "after", and its test would fail."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from panel.testing.fakes import judges
from panel.testing.fakes.openai import FakeOpenAI
from tests.cli.test_cli import panel
from tests.judged import judge_args as openai_args

KEYS = {"OPENAI_API_KEY": "sk-test-judgment-000000000000000000"}
CARDS = 8
"""Enough cards for the per-card test to reach p 2/2**8 = 0.008."""
PROBES = ("padding", "injection", "order", "brand")


def evaluate(server: FakeOpenAI, tmp_path: Path, *extra: str | Path) -> dict[str, Any]:
    """Return the eval document of the cards in tmp_path/cards (CARDS new ones if none),
    with the line announcing its calls under "_announced"."""
    cards = sorted((tmp_path / "cards").glob("*.json")) or judges.write_cards(
        tmp_path / "cards", CARDS
    )
    result = panel("eval", *cards, "--json", *extra, *openai_args(server, tmp_path), env=KEYS)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    document["_announced"] = next(
        (line for line in result.stderr.splitlines() if "model call(s) to make" in line), ""
    )
    return document


def within_noise(row: dict[str, Any]) -> bool:
    """Whether a probe's change is within the noise: not flagged, not read biased, and less
    than 3 points beyond the noise (the judges' noise alone is up to 8 points a sample)."""
    beyond = row["beyond_noise"]
    return not row["flagged"] and row["reading"] != "biased" and abs(beyond["mean_delta"]) < 3


def stored_mitigations(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "panel.db") as con:
        return {row[0] for row in con.execute("SELECT DISTINCT mitigations FROM reviews")}


def test_an_order_sensitive_judge_is_flagged_on_order_and_rotating_fields_takes_it_away(
    tmp_path: Path,
) -> None:
    with FakeOpenAI(content=judges.order_sensitive) as server:
        doc = evaluate(server, tmp_path, "--samples", "2", "--mitigations", "rotate-fields")
        answered = server.answered
        again = evaluate(server, tmp_path, "--samples", "2", "--rotate-fields")
        assert server.answered == answered  # the rotated reviews were stored apart, and reused
    order = doc["perturbations"]["order"]
    assert order["flagged"] and order["reading"] == "biased"
    assert order["beyond_noise"]["mean_delta"] > 10 and order["p_value"] < 0.01
    assert all(not doc["perturbations"][k]["flagged"] for k in ("padding", "injection", "brand"))
    compared = doc["mitigations"]
    assert compared["names"] == ["rotate-fields"] and compared["after"] == ["rotate-fields"]
    assert compared["probes"]["order"]["before"]["reading"] == "biased"
    assert within_noise(compared["probes"]["order"]["after"])
    assert within_noise(again["perturbations"]["order"]) and again["judged_with"] == [
        "rotate-fields"
    ]
    assert doc["headline"][0].startswith("Biased: order (+")
    # Every card is moved by the order; one card's noise may also pass another probe's band.
    moved = [c["moved_by"] for c in doc["cards"]]
    assert all("order" in m for m in moved), moved
    assert stored_mitigations(tmp_path) == {"", "rotate-fields"}


def test_a_brand_loving_judge_is_flagged_on_brand_and_blind_names_takes_it_away(
    tmp_path: Path,
) -> None:
    with FakeOpenAI(content=judges.brand_loving) as server:
        doc = evaluate(server, tmp_path, "--samples", "2", "--mitigations", "blind-names")
        blind = [b for b in server.bodies if "[TOOL]" in judges.card_text(b)]
    brand = doc["perturbations"]["brand"]
    assert brand["flagged"] and brand["reading"] == "biased"
    assert brand["beyond_noise"]["mean_delta"] > 15
    assert all(not doc["perturbations"][k]["flagged"] for k in ("padding", "injection", "order"))
    assert within_noise(doc["mitigations"]["probes"]["brand"]["after"])
    costs = doc["mitigations"]["reviews"]
    assert set(costs["before"]) == set(costs["after"]) >= {"names_share", "placeholder_share"}
    assert blind and not any(maker in judges.card_text(b) for b in blind for maker in judges.FAMOUS)
    founder = [b for b in blind if "as the Founder" in b["messages"][-1]["content"]]
    assert founder and all(
        "made by a maker the panel has no record of" in b["messages"][-1]["content"]
        for b in founder
    )
    assert stored_mitigations(tmp_path) == {"", "blind-names"}


def test_an_injection_obeying_judge_is_flagged_on_injection_and_stripping_takes_it_away(
    tmp_path: Path,
) -> None:
    with FakeOpenAI(content=judges.injection_obeying) as server:
        doc = evaluate(server, tmp_path, "--samples", "2", "--mitigations", "strip-injection")
    # Both arms share every review with nothing to strip: asked once, announced once.
    assert server.answered == CARDS * 6 * 4 * 2 + CARDS * 4 * 2
    assert doc["_announced"].startswith(f"panel: {server.answered} model call(s) to make")
    injection = doc["perturbations"]["injection"]
    assert injection["flagged"] and injection["reading"] == "biased"
    assert injection["flip_rate"] > 0.5
    assert all(not doc["perturbations"][k]["flagged"] for k in ("padding", "order", "brand"))
    assert within_noise(doc["mitigations"]["probes"]["injection"]["after"])
    # Only the injection probes had anything to strip: every other review is shared by both arms.
    assert stored_mitigations(tmp_path) == {"", "strip-injection"}
    with sqlite3.connect(tmp_path / "panel.db") as con:
        stripped = con.execute(
            "SELECT DISTINCT tool FROM reviews WHERE mitigations = 'strip-injection'"
        ).fetchall()
    assert sorted(t for (t,) in stripped) == sorted(
        f"widget-{chr(97 + i)}~injection" for i in range(CARDS)
    )


def test_a_noise_only_judge_is_flagged_on_nothing_once_read_against_the_null(
    tmp_path: Path,
) -> None:
    with FakeOpenAI(content=judges.noise_only) as server:
        doc = evaluate(server, tmp_path)
    # The card with the run's seed, each probe with seeds of its own (the repeat's: 1000 on).
    assert {b["seed"] for b in server.bodies} == {7, 1007, 2007, 3007, 4007, 5007}
    rows = doc["perturbations"]
    assert rows["repeat"]["reading"] == "baseline" and rows["repeat"]["flip_rate"] >= 0.10
    for kind in PROBES:
        assert not rows[kind]["flagged"] and rows[kind]["reading"] in ("noisy", "ok"), kind
    # Today's fixed rule (5 points, or 10% of verdicts flipped) would flag every probe.
    fixed = [k for k in PROBES if abs(rows[k]["mean_delta"]) >= 5 or rows[k]["flip_rate"] >= 0.10]
    assert fixed == list(PROBES)
    assert doc["headline"][0].startswith("Biased: none of the 4 probes")


def test_a_real_bias_among_noise_reads_biased_and_the_noise_noisy(tmp_path: Path) -> None:
    """The mixed run: one order bias of 8 points under noise of ±12 around the ship line."""

    def mixed(body: dict[str, Any]) -> str:
        text = judges.card_text(body)
        later = text.find("Description:") < text.find("Name:")
        return judges.reply(body, 60 + judges.noise(body, 12) + (8 if later else 0))

    with FakeOpenAI(content=mixed) as server:
        doc = evaluate(server, tmp_path, "--samples", "3")
    readings = {kind: row["reading"] for kind, row in doc["perturbations"].items()}
    assert readings["order"] == "biased"
    assert all(readings[k] != "biased" for k in ("padding", "injection", "brand"))
    assert "noisy" in readings.values()  # the noise is visible, and read as noise


def test_the_brand_probe_changes_the_name_only_so_length_is_not_brand(tmp_path: Path) -> None:
    with FakeOpenAI(content=judges.length_loving) as server:
        doc = evaluate(server, tmp_path)
        brand_names = {
            line
            for b in server.bodies
            for line in judges.card_text(b).splitlines()
            if line.startswith("Name:")
        }
    rows = doc["perturbations"]
    assert rows["padding"]["flagged"] and not rows["brand"]["flagged"]
    assert abs(rows["brand"]["mean_delta"]) < 1
    assert any(name.split()[1] in judges.FAMOUS for name in brand_names)
    # Length shows per persona even without the padding probe.
    assert all(p["spearman"] == 1.0 for p in doc["length"]["by_persona"].values())


def test_agreement_is_never_read_as_correctness(tmp_path: Path) -> None:
    """Every persona scores every card alike (alpha 1.0), in exactly the wrong order."""
    judges.write_cards(tmp_path / "cards", CARDS, outcome=[i / 10 for i in range(CARDS)])

    def backwards(body: dict[str, Any]) -> str:
        letter = judges.card_text(body).split("Widget ", 1)[1][0]
        return judges.reply(body, 95 - 10 * (ord(letter) - 65))

    report = tmp_path / "eval.html"
    with FakeOpenAI(content=backwards) as server:
        doc = evaluate(server, tmp_path, "--html", report)
    assert doc["agreement"]["krippendorff_alpha"] == 1.0
    assert doc["labels"]["pairwise_accuracy"] == 0.0
    page = " ".join(report.read_text().split())
    assert "relied on" not in page
    assert "Agreement is not correctness" in page and "worse than a coin" in page
    assert doc["headline"][2].startswith("Labels: the panel orders 0% of 28 labelled pair(s)")


def test_a_sample_set_is_asked_at_one_temperature(tmp_path: Path) -> None:
    card = judges.write_cards(tmp_path / "cards", 1)[0]
    with FakeOpenAI(content=judges.noise_only) as server:
        args = openai_args(server, tmp_path)
        assert panel("review", card, *args, env=KEYS).returncode == 0
        assert [b["temperature"] for b in server.bodies] == [0.0] * 4
        more = panel("review", card, "--samples", "2", "--json", *args, env=KEYS)
        assert more.returncode == 0, more.stderr
        # Sample 0 at temperature 0 is not reused in a set asked at 0.7: 8 new calls, not 4.
        assert [b["temperature"] for b in server.bodies[4:]] == [0.7] * 8
        one = panel("review", card, "--json", *args, env=KEYS)  # the one-sample review is kept
        assert server.answered == 12
    assert all(len(r["samples"]) == 2 for r in json.loads(more.stdout)["reviews"])
    assert all(len(r["samples"]) == 1 for r in json.loads(one.stdout)["reviews"])


class Peak:
    """A judge that holds each answer a moment and counts how many are in flight at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0

    def __call__(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.05)
        with self.lock:
            self.now -= 1


def test_eval_runs_with_the_runs_concurrency(tmp_path: Path) -> None:
    judges.write_cards(tmp_path / "cards", 2)
    peak = Peak()
    with FakeOpenAI(content=peak) as server:
        evaluate(server, tmp_path, "--concurrency", "10")
    assert peak.peak == 10  # more than one card variant's 4 personas at a time


def test_the_cost_box_counts_reused_reviews_and_what_they_cost(tmp_path: Path) -> None:
    from panel.testing.fakes.anthropic import FakeAnthropicBatches

    cards = judges.write_cards(tmp_path / "cards", 2)
    with FakeAnthropicBatches(live=True) as server:
        env = {**KEYS, "ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_BASE_URL": server.url}
        args = ["eval", *cards, "--json", "--provider", "anthropic", "--model", "claude-haiku-4-5"]
        args += ["--db", tmp_path / "panel.db"]
        first = json.loads(panel(*args, env=env).stdout)
        second = json.loads(panel(*args, env=env).stdout)
    assert first["cost"]["calls"] == 2 * 6 * 4 and first["cost"]["reused"]["reviews"] == 0
    assert first["cost"]["usd"] > 0
    assert second["cost"]["calls"] == 0 and second["cost"]["usd"] == 0
    assert second["cost"]["reused"] == {
        "reviews": 2 * 6 * 4,
        "usd": round(first["cost"]["usd"], 6),
        "unknown": 0,
    }


def test_unknown_mitigations_are_one_line_and_exit_2(tmp_path: Path) -> None:
    for value in ("rotate-fields,length", ","):
        result = panel("eval", "--mitigations", value, "--db", tmp_path / "p.db")
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.db").exists()
