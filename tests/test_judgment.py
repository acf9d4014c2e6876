"""Judgments you can measure: samples, a panel of models, `panel eval` against judges whose bias
is known, and the --max-cost ceiling. Every run goes through the command line against loopback
servers spoken to by the official SDKs."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from panel.aggregate import Judged, panel_result, ship_interval
from panel.testing.fakes import judges
from panel.testing.fakes.anthropic import FakeAnthropicBatches
from panel.testing.fakes.openai import FakeOpenAI, answer_for, completion, prompt_text
from tests.cli.test_cli import panel
from tests.judged import judge_args as openai_args

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))[:2]
KEYS = {"OPENAI_API_KEY": "sk-test-judgment-000000000000000000", "ANTHROPIC_API_KEY": "sk-ant-x"}


def schema_of(body: dict[str, Any]) -> dict[str, Any]:
    fmt = body.get("response_format") or {}
    return fmt.get("json_schema", {}).get("schema") or fmt.get("schema")


def answer(body: dict[str, Any], score: int) -> str:
    return json.dumps(answer_for(schema_of(body), score=max(0, min(100, score))))


def noisy(body: dict[str, Any]) -> str:
    """A judge whose score moves with the seed (one sample to the next) by up to 30 points."""
    digest = hashlib.sha256(f"{body['seed']}{prompt_text(body['messages'])}".encode()).digest()
    return answer(body, 45 + digest[0] % 31)


def by_length(body: dict[str, Any]) -> str:
    """A judge that scores the length of what it reads: more words, more points."""
    return answer(body, len(prompt_text(body["messages"])) // 60)


def card_blind(body: dict[str, Any]) -> str:
    """A judge that never reads the card: the same score for every card."""
    return answer(body, 70)


def calls(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "panel.db") as con:
        return int(con.execute("SELECT count(*) FROM calls").fetchone()[0])


# --- samples ------------------------------------------------------------------------------------


def test_samples_are_stored_reused_by_index_and_summarised(tmp_path: Path) -> None:
    with FakeOpenAI(content=noisy) as server:
        args = ["review", EXAMPLES[0], "--samples", "3", "--json", *openai_args(server, tmp_path)]
        first = panel(*args, env=KEYS)
        assert first.returncode == 0, first.stderr
        assert server.answered == 12  # 4 personas x 3 samples
        again = panel(*args, env=KEYS)
        assert server.answered == 12  # the same run again: no call
        assert json.loads(again.stdout) == {**json.loads(first.stdout)}
        more = panel(*[a if a != "3" else "5" for a in args], env=KEYS)
        assert server.answered == 20  # a larger N asks only for the missing samples
    seeds = sorted({body["seed"] for body in server.bodies})
    assert seeds == [7, 8, 9, 10, 11]  # a seed per sample
    assert {body["temperature"] for body in server.bodies} == {0.7}
    document = json.loads(more.stdout)
    for review in document["reviews"]:
        scores = [s["score"] for s in review["samples"]]
        assert [s["sample"] for s in review["samples"]] == [0, 1, 2, 3, 4]
        mean = sum(scores) / 5
        assert review["score_mean"] == round(mean, 1)
        assert review["verdict"] == ("ship" if mean >= 60 else "skip")
        assert review["score_sd"] is not None and review["score_sd"] >= 0
        assert re.fullmatch(r"\d+ ± \d+", review["score_label"])
        ships = sum(1 for s in scores if s >= 60)
        assert review["split"] == (f"{ships}/{5 - ships}" if 0 < ships < 5 else None)
    interval = document["panel"]["ship_pct_interval"]
    assert interval[0] <= document["panel"]["ship_pct"] <= interval[1]


def test_scorecard_shows_the_spread_and_a_split(tmp_path: Path) -> None:
    def split_judge(body: dict[str, Any]) -> str:
        return answer(body, 80 if body["seed"] % 2 else 40)  # seeds 7, 8, 9: 80, 40, 80

    with FakeOpenAI(content=split_judge) as server:
        result = panel(
            "review",
            EXAMPLES[0],
            "--samples",
            "3",
            "--persona",
            "builder",
            *openai_args(server, tmp_path),
            env=KEYS,
        )
    assert result.returncode == 0, result.stderr
    assert "67 ± 23" in result.stdout
    assert "split 2/1" in result.stdout
    assert "90% interval" in result.stdout


def test_comparison_pages_show_the_spread_the_split_and_the_interval(tmp_path: Path) -> None:
    def split_judge(body: dict[str, Any]) -> str:
        return answer(body, 80 if body["seed"] % 2 else 40)  # seeds 7, 8, 9: 80, 40, 80

    with FakeOpenAI(content=split_judge) as server:
        result = panel(
            "compare", *EXAMPLES, "--samples", "3", *openai_args(server, tmp_path), env=KEYS
        )
    assert result.returncode == 0, result.stderr
    pages = tmp_path / "out" / "compare"
    markdown = next(pages.glob("*.md")).read_text()
    html = next(pages.glob("*.html")).read_text()
    for page in (markdown, html):
        assert "67 ± 23/100 · ship · split 2/1" in page
        assert "Mean of 3 samples: 80, 40, 80" in page
        assert re.search(r"90% interval \d+–\d+%", page)
    one = tmp_path / "one"
    with FakeOpenAI(content=split_judge) as server:
        result = panel("compare", *EXAMPLES, *openai_args(server, one), env=KEYS)
    page = next((one / "out" / "compare").glob("*.md")).read_text()
    assert "80/100 · ship" in page  # one sample (seed 7): the seed pages' "85/100 · ship"
    assert "±" not in page and "interval" not in page and "samples" not in page


def test_the_score_never_crosses_the_ship_line_and_one_sample_has_no_interval() -> None:
    judged = Judged("builder", (60, 59, 60, 59, 60, 59, 60, 59, 59))  # mean 59.44...
    assert judged.verdict == "skip" and judged.score == 59
    assert Judged("b", (72,)).label() == "72" and Judged("b", (72,)).sd is None
    assert ship_interval([Judged("a", (80,)), Judged("b", (30,))]) is None
    steady = [Judged("a", (80, 81, 79)), Judged("b", (20, 21, 22))]
    assert ship_interval(steady) == (50, 50)
    result = panel_result([Judged("a", (90, 30)), Judged("b", (70, 72))])
    assert result.samples == 2 and result.ship_pct_interval is not None
    low, high = result.ship_pct_interval
    assert low <= result.ship_pct <= high and low < high


# --- a panel of models --------------------------------------------------------------------------


def test_a_panel_may_mix_providers_and_every_page_names_its_model(tmp_path: Path) -> None:
    with FakeOpenAI() as openai_server, FakeAnthropicBatches(live=True) as anthropic_server:
        env = {**KEYS, "ANTHROPIC_BASE_URL": anthropic_server.url}
        result = panel(
            "compare",
            *EXAMPLES,
            "--persona-model",
            "skeptic=anthropic:claude-haiku-4-5",
            "--persona-model",
            "founder=anthropic:claude-haiku-4-5",
            *openai_args(openai_server, tmp_path),
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert openai_server.answered == 4 and anthropic_server.live_calls == 4
        again = panel(
            "compare",
            *EXAMPLES,
            "--persona-model",
            "skeptic=anthropic:claude-haiku-4-5",
            "--persona-model",
            "founder=anthropic:claude-haiku-4-5",
            *openai_args(openai_server, tmp_path),
            env=env,
        )
        assert again.returncode == 0 and anthropic_server.live_calls == 4  # the cache key knows
    with sqlite3.connect(tmp_path / "panel.db") as con:
        logged = set(con.execute("SELECT persona, provider, model FROM calls").fetchall())
    assert logged == {
        ("builder", "openai", "fake"),
        ("futurist", "openai", "fake"),
        ("skeptic", "anthropic", "claude-haiku-4-5"),
        ("founder", "anthropic", "claude-haiku-4-5"),
    }
    page = next((tmp_path / "out" / "compare").glob("*.html")).read_text()
    assert "claude-haiku-4-5" in page and "fake" in page
    document = json.loads(next((tmp_path / "out" / "compare").glob("*.json")).read_text())
    models = {r["persona"]: r["model"] for r in document["a"]["reviews"]}
    assert models == {
        "builder": "fake",
        "skeptic": "claude-haiku-4-5",
        "futurist": "fake",
        "founder": "claude-haiku-4-5",
    }


def test_a_persona_file_names_its_model(tmp_path: Path) -> None:
    folder = tmp_path / "personas"
    folder.mkdir()
    for source in (REPO / "personas").glob("*.yaml"):
        text = source.read_text()
        if source.stem == "skeptic":
            text += "\nmodel: anthropic:claude-haiku-4-5\n"
        (folder / source.name).write_text(text)
    with FakeOpenAI() as openai_server, FakeAnthropicBatches(live=True) as anthropic_server:
        env = {**KEYS, "ANTHROPIC_BASE_URL": anthropic_server.url}
        args = ["review", EXAMPLES[0], "--json", "--personas", folder]
        result = panel(*args, *openai_args(openai_server, tmp_path), env=env)
        assert result.returncode == 0, result.stderr
        assert anthropic_server.live_calls == 1 and openai_server.answered == 3
        override = panel(
            *args,
            "--persona-model",
            "skeptic=openai:fake",
            *openai_args(openai_server, tmp_path),
            env=env,
        )
        assert override.returncode == 0, override.stderr
        assert anthropic_server.live_calls == 1 and openai_server.answered == 4


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("skeptic", "expected PERSONA=PROVIDER:MODEL"),
        ("critic=openai:x", "unknown persona 'critic'"),
        ("skeptic=Open AI:x", "--persona-model skeptic:"),
        ("skeptic=nowhere:x", "unknown provider 'nowhere'"),
    ],
)
def test_bad_persona_models_get_one_line(tmp_path: Path, flag: str, message: str) -> None:
    result = panel("review", EXAMPLES[0], "--persona-model", flag, "--db", tmp_path / "p.db")
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- panel eval against judges whose bias is known ---------------------------------------------


def run_eval(tmp_path: Path, judge: Any, *extra: str | Path) -> dict[str, Any]:
    """Run the eval of the first two examples (or of the cards among extra) with judge."""
    cards = [a for a in extra if isinstance(a, Path)] or EXAMPLES
    flags = [a for a in extra if not isinstance(a, Path)]
    with FakeOpenAI(content=judge) as server:
        result = panel("eval", *cards, "--json", *flags, *openai_args(server, tmp_path), env=KEYS)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["schema"] == "panel.eval/1"
    return document


def test_a_judge_that_scores_length_is_flagged_on_padding(tmp_path: Path) -> None:
    cards = judges.write_cards(tmp_path / "cards", 8)
    document = run_eval(tmp_path, by_length, *cards)
    padding = document["perturbations"]["padding"]
    assert padding["flagged"] and padding["mean_delta"] >= 3 and padding["reading"] == "biased"
    assert padding["pairs"] == 8 * 4 and padding["cards"] == 8
    assert padding["p_value"] < 0.01  # every card moves up: no noise gives that
    assert not document["perturbations"]["order"]["flagged"]  # same words, other order
    assert document["perturbations"]["order"]["mean_delta"] == 0


def test_two_cards_are_too_few_to_call_a_bias(tmp_path: Path) -> None:
    document = run_eval(tmp_path, by_length)
    padding = document["perturbations"]["padding"]
    # Not "noisy": the padding moves every card, but two cards are too few for the test to say
    # whether that is beyond the noise.
    assert padding["mean_delta"] >= 5 and not padding["flagged"]
    assert padding["reading"] == "too-few-cards"
    assert padding["reading_text"] == "too few cards to test (needs 6)"
    assert padding["p_value"] == 0.5  # two cards, both up: the smallest p of a per-card test
    assert document["power"] == {
        "cards": 2,
        "smallest_p": 0.5,
        "enough": False,
        "cards_needed": 6,
    }
    assert document["headline"][0].startswith("Biased: too few cards to test (needs 6)")


def test_a_judge_that_ignores_the_card_shows_no_change(tmp_path: Path) -> None:
    document = run_eval(tmp_path, card_blind, "--samples", "2")
    for kind in ("repeat", "padding", "injection", "order", "brand"):
        probe = document["perturbations"][kind]
        assert probe["mean_delta"] == 0 and probe["flip_rate"] == 0 and not probe["flagged"]
        assert probe["p_value"] is None  # nothing changed: nothing to test
        assert probe["reading"] == ("baseline" if kind == "repeat" else "ok")
    stability = document["stability"]
    assert stability["pooled_sd"] == stability["mean_sd"] == stability["flip_rate"] == 0
    assert all(p["flagged"] for p in document["personas"].values())  # every score in one band
    assert document["agreement"]["krippendorff_alpha"] is None  # no variance: nothing to agree on


def test_a_noisy_judge_shows_under_stability(tmp_path: Path) -> None:
    document = run_eval(tmp_path, noisy, "--samples", "3")
    assert document["stability"]["samples"] == 3
    assert document["stability"]["mean_sd"] > 3
    assert set(document["stability"]["by_persona"]) == {"builder", "skeptic", "futurist", "founder"}
    assert document["consistency"]["answers"] == 2 * 6 * 4 * 3  # a card and its 5 probes
    assert document["cost"]["calls"] == 144
    for probe in document["perturbations"].values():  # changes from noise alone: p far from 0
        assert probe["p_value"] is None or probe["p_value"] > 0.01


def test_eval_counts_failures_and_labels(tmp_path: Path, write_card: Any) -> None:
    cards = []
    for n, outcome in enumerate(["hit", "miss", "hit"]):
        example = re.sub(r"(?m)^outcome:.*$", "", EXAMPLES[n % 2].read_text())
        text = example + f"\noutcome: {outcome}\nslug: labelled-{n}\n"
        cards.append(write_card(f"c{n}.yaml", text))

    def judge(body: dict[str, Any]) -> str | dict[str, Any]:
        text = prompt_text(body["messages"])
        if "Note to the reviewers" in text and "founder" in json.dumps(body["response_format"]):
            return completion(body, "not json at all")  # never valid: counted, not dropped
        return noisy(body)

    with FakeOpenAI(content=judge) as server:
        result = panel("eval", *cards, "--json", *openai_args(server, tmp_path), env=KEYS)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    consistency = document["consistency"]
    assert consistency["invalid"] == 3  # the founder on each card's injection probe
    assert consistency["answers"] == 3 * 6 * 4 - 3
    assert consistency["follow_rule"] == consistency["answers"]
    assert {f["variant"] for f in consistency["failures"]} == {"injection"}
    assert document["labels"]["cards"] == 3
    assert document["labels"]["auc"] is not None
    assert document["labels"]["pairwise_accuracy"] is not None
    assert [c["outcome"] for c in document["cards"]] == ["hit", "miss", "hit"]
    for body in server.bodies:  # the label is never shown to the panel
        assert "outcome" not in prompt_text(body["messages"]).lower()


def test_eval_writes_an_html_report_and_a_second_run_makes_no_call(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    with FakeOpenAI(content=by_length) as server:
        args = ["eval", *EXAMPLES, "--html", report, *openai_args(server, tmp_path)]
        first = panel(*args, env=KEYS)
        assert first.returncode == 0, first.stderr
        assert (
            "padding" in first.stdout and "Biased: too few cards to test (needs 6)" in first.stdout
        )
        # said before any call, with the plan and a progress that counts it down
        assert "2 card(s): too few to test the probes for bias" in first.stderr
        assert "model call(s) to make" in first.stderr
        answered = server.answered
        second = panel(*args, env=KEYS)
        assert second.returncode == 0 and server.answered == answered
    page = report.read_text()
    assert page.count("<svg") >= 2 and "http://" not in page.split("<svg", 1)[0].lower()
    # written anywhere, the report links to no site page it does not sit beside
    assert "index.html" not in page and "feed.atom" not in page
    site = panel("site", "build", "--db", tmp_path / "panel.db", "--out", tmp_path / "site")
    assert site.returncode == 0, site.stderr
    assert not list((tmp_path / "site").rglob("*~*"))  # probes stay out of the site


# --- the cost ceiling ---------------------------------------------------------------------------


def anthropic_review(tmp_path: Path, server: FakeAnthropicBatches, *extra: str | Path) -> Any:
    return panel(
        "review",
        *extra,
        "--provider",
        "anthropic",
        "--model",
        "claude-haiku-4-5",
        "--db",
        tmp_path / "panel.db",
        "--out",
        tmp_path / "out",
        env={**KEYS, "ANTHROPIC_BASE_URL": server.url},
    )


def test_max_cost_stops_before_the_ceiling_keeps_what_is_done_and_exits_3(tmp_path: Path) -> None:
    cards = [str(p) for p in sorted((REPO / "examples").glob("*.yaml"))]
    with FakeAnthropicBatches(live=True) as server:
        stopped = anthropic_review(tmp_path, server, *cards, "--max-cost", "0.02")
        assert stopped.returncode == 3, stopped.stderr
        line = stopped.stderr.strip().splitlines()[-1]
        found = re.search(
            r"spent \$(0\.0\d+) of \$0\.0200, \$(0\.0\d+) left, and the next call "
            r"may cost up to \$(0\.0\d+)",
            line,
        )
        assert found, line
        spent, left, next_call = map(float, found.groups())
        assert left < next_call  # it stopped only when no further call fits, not before
        assert round(spent + left, 4) == 0.02
        assert "model call(s) to make, estimated cost at most $" in stopped.stderr
        done = server.live_calls
        assert 0 < done < 24
        with sqlite3.connect(tmp_path / "panel.db") as con:
            spent = con.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0]
            reviews = con.execute("SELECT count(*) FROM reviews").fetchone()[0]
        assert spent <= 0.02 and reviews == done  # every answered call is a stored review
        finished = anthropic_review(tmp_path, server, *cards, "--fresh")
        assert finished.returncode == 0, finished.stderr
        assert server.live_calls == done + 24
    # Once the model has answered, the line before a run also says what it will likely cost.
    likely = re.search(
        r"24 model call\(s\) to make, estimated cost \$(0\.\d+) at the length of past answers, "
        r"at most \$(0\.\d+)",
        finished.stderr,
    )
    assert likely, finished.stderr
    assert 0 < float(likely.group(1)) < float(likely.group(2))
    with sqlite3.connect(tmp_path / "panel.db") as con:
        paid = con.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0] - spent
    # Within a factor of two of what the 24 calls cost (the prompt estimate, characters / 4,
    # errs high against the 300 tokens the server bills), far nearer than the bound.
    assert paid / 2 < float(likely.group(1)) < 2 * paid < float(likely.group(2))


def test_max_cost_refuses_a_model_without_a_price(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        result = panel(
            "review", EXAMPLES[0], "--max-cost", "1", *openai_args(server, tmp_path), env=KEYS
        )
        assert result.returncode == 2
        assert (
            "the price of openai:fake on a compatible server (not api.openai.com) is unknown"
            in result.stderr
        )
        assert server.requests == 0
        unpriced = panel("review", EXAMPLES[0], *openai_args(server, tmp_path), env=KEYS)
    assert unpriced.returncode == 0
    assert (
        unpriced.stderr.count(
            "the price of openai:fake on a compatible server (not api.openai.com) is unknown"
        )
        == 1
    )  # said once


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("flag", "--max-cost: "),
        ("env", "PANEL_MAX_COST: "),
        ("config", "max_cost in the config file: "),
    ],
)
def test_a_longer_models_name_gets_no_price_and_the_refusal_names_the_ceilings_source(
    tmp_path: Path, how: str, named: str
) -> None:
    """Finding 9 of issue 22: claude-opus-4-7 was priced as claude-opus-4 (a prefix), and the
    refusal for an unpriced model said "drop --max-cost" when the ceiling came from
    PANEL_MAX_COST."""
    args = ["--provider", "anthropic", "--model", "claude-opus-4-7", "--db", tmp_path / "p.db"]
    env = {**KEYS}
    if how == "flag":
        args += ["--max-cost", "1"]
    elif how == "env":
        env["PANEL_MAX_COST"] = "1"
    else:
        (tmp_path / "c.toml").write_text("max_cost = 1\n")
        env["PANEL_CONFIG"] = str(tmp_path / "c.toml")
    with FakeAnthropicBatches(live=True) as server:
        env["ANTHROPIC_BASE_URL"] = server.url
        result = panel("review", EXAMPLES[0], *args, env=env)
        assert server.live_calls == 0
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert (
        f"panel: error: {named}the price of anthropic:claude-opus-4-7 is unknown" in result.stderr
    )
    advice = {"flag": "drop --max-cost", "env": "unset PANEL_MAX_COST", "config": "remove max_cost"}
    assert advice[how] in result.stderr


def test_a_prices_file_of_ones_own_prices_a_model_on_ones_own_server(tmp_path: Path) -> None:
    """Issue 22: a user's prices file (--prices, PANEL_PRICES or the config key) over the
    built-in one, so --max-cost works for a model on their own server."""
    prices = tmp_path / "prices.toml"
    prices.write_text('[openai]\n"fake" = [1.0, 0.5, 2.0]\n')
    with FakeOpenAI() as server:
        args = [*openai_args(server, tmp_path), "--max-cost", "0.000001"]
        refused = panel("review", EXAMPLES[0], *args, env=KEYS)
        assert refused.returncode == 2 and "the price of openai:fake" in refused.stderr
        by_flag = panel("review", EXAMPLES[0], *args, "--prices", prices, env=KEYS)
        by_env = panel("review", EXAMPLES[0], *args, env={**KEYS, "PANEL_PRICES": str(prices)})
        (tmp_path / "c.toml").write_text(f'prices = "{prices}"\n')
        by_file = panel(
            "review", EXAMPLES[0], *args, env={**KEYS, "PANEL_CONFIG": str(tmp_path / "c.toml")}
        )
        assert server.requests == 0, "the ceiling is far below one call's estimate"
        for result in (by_flag, by_env, by_file):
            assert result.returncode == 3 and "cost ceiling reached" in result.stderr, result.stderr
        priced = panel(
            "review",
            EXAMPLES[0],
            *openai_args(server, tmp_path),
            "--prices",
            prices,
            "--max-cost",
            "5",
            env=KEYS,
        )
        assert priced.returncode == 0, priced.stderr
        assert "unknown" not in priced.stderr
    with sqlite3.connect(tmp_path / "panel.db") as con:
        costs = [row[0] for row in con.execute("SELECT cost_usd FROM calls")]
    assert len(costs) == 4 and all(c is not None and c > 0 for c in costs)
    for bad, fragment in [
        ('[openai]\n"fake" = [1.0, 2.0]\n', "openai.fake: must be [input, cached input, output]"),
        ('[openai]\n"fake" = [1.0, nan, 2.0]\n', "openai.fake: must be"),
        ('[openai]\n"fake" = [-1.0, 0.0, 2.0]\n', "prices must be from 0"),
        ("[openai\n", "cannot read prices"),
    ]:
        prices.write_text(bad)
        result = panel("review", EXAMPLES[0], *args, "--prices", prices, env=KEYS)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


def test_queue_run_stops_at_the_ceiling_and_resumes(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    cards = sorted((REPO / "examples").glob("*.yaml"))
    pairs.write_text("".join(f"{a},{b}\n" for a, b in itertools.pairwise(cards)))
    db, out = tmp_path / "panel.db", tmp_path / "out"
    added = panel("queue", "add", pairs, "--samples", "2", "--db", db)
    assert added.returncode == 0, added.stderr
    assert (
        "24 review(s), 24 to run (0 stored already), 2 samples each" in added.stdout
    )  # 6 tools x 4 personas
    with FakeAnthropicBatches(live=True) as server:
        env = {**KEYS, "ANTHROPIC_BASE_URL": server.url}
        common = ["--provider", "anthropic", "--model", "claude-haiku-4-5", "--db", db]
        stopped = panel("queue", "run", *common, "--out", out, "--max-cost", "0.03", env=env)
        assert stopped.returncode == 3, stopped.stderr
        assert "cost ceiling reached" in stopped.stderr
        status = json.loads(panel("queue", "status", "--json", "--db", db).stdout)
        assert status["tasks"].get("failed", 0) == 0
        finished = panel("queue", "run", *common, "--out", out, env=env)
        assert finished.returncode == 0, finished.stderr
        assert server.live_calls == 48
    page = json.loads(next((out / "compare").glob("*.json")).read_text())
    assert all(len(r["samples"]) == 2 for r in page["a"]["reviews"])


def test_a_provider_batch_keeps_the_ceiling_too(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    cards = sorted((REPO / "examples").glob("*.yaml"))
    pairs.write_text("".join(f"{a},{b}\n" for a, b in itertools.pairwise(cards)))
    db, out = tmp_path / "panel.db", tmp_path / "out"
    assert panel("queue", "add", pairs, "--db", db).returncode == 0
    with FakeAnthropicBatches(live=True, polls=1) as server:
        env = {**KEYS, "ANTHROPIC_BASE_URL": server.url}
        common = ["--provider", "anthropic", "--model", "claude-haiku-4-5", "--db", db]
        common += ["--out", out, "--batch-api", "--poll-interval", "0.05"]
        stopped = panel("queue", "run", *common, "--max-cost", "0.02", env=env)
        assert stopped.returncode == 3, stopped.stderr
        batched = sum(len(r) for r in server.requests.values())
        assert 0 < batched < 24  # only what fits at the batch price went into the batch
        with sqlite3.connect(db) as con:
            spent = con.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0]
        assert spent <= 0.02
        assert "cost ceiling reached" in stopped.stderr
        finished = panel("queue", "run", *common, env=env)
        assert finished.returncode == 0, finished.stderr
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM reviews").fetchone()[0] == 24


def test_queued_samples_run_at_the_sampling_temperature(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"{EXAMPLES[0]},{EXAMPLES[1]}\n")
    db = tmp_path / "panel.db"
    assert panel("queue", "add", pairs, "--samples", "2", "--db", db).returncode == 0
    with FakeOpenAI(content=noisy) as server:
        args = openai_args(server, tmp_path)
        ran = panel("queue", "run", *args, env=KEYS)  # the run itself asks for one sample
        assert ran.returncode == 0, ran.stderr
    assert server.answered == 16  # 2 tools x 4 personas x 2 samples
    assert {(body["seed"], body["temperature"]) for body in server.bodies} == {(7, 0.7), (8, 0.7)}
