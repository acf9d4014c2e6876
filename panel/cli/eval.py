"""`panel eval`: how far the panel as configured can be trusted, measured on a set of cards, as
tables and lines (the HTML report is panel.eval.report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import JsonOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.runs.eval import Evaluated

DEFAULT_CARDS = Path("examples")


@uses_settings(run=True)
def eval_command(
    settings: Settings,
    cards: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="CARD",
            help="Tool card files, or folders of them. Default: examples/.",
            show_default=False,
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Also write the report as one self-contained HTML page."
        ),
    ] = None,
    pairwise: Annotated[
        bool,
        typer.Option(
            "--pairwise",
            help="Also judge every pair of cards with different `outcome:` labels side by side, "
            "in both orders (8 calls a pair), and report position consistency and the pairwise "
            "pick's accuracy against the labels next to the absolute scores'.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure the panel: the spread of each persona's scores, their agreement, consistency,
    the stability of samples (--samples 2 or more), the score change under four probes of every
    card (padding, injection, order, brand), agreement with labelled outcomes (a card's
    `outcome:`), and the eval's own cost.

    Each card is reviewed with its four probes, 5 x 4 x N calls a card; stored reviews are
    reused, so a second run makes no call. Exit 3 if --max-cost stopped it.
    """
    evaluated = output.run(_eval(settings, cards or [DEFAULT_CARDS], as_json, pairwise))
    output.finish(evaluated.ended)
    document = evaluated.document
    assert document is not None
    if html is not None:
        from panel.eval.report import eval_html
        from panel.files import write_atomic

        write_atomic(html, eval_html(document))
    if as_json:
        output.echo_json(document)
    else:
        print_report(document, html)


async def _eval(
    settings: Settings, paths: list[Path], as_json: bool, pairwise: bool = False
) -> Evaluated:
    from panel.runs.eval import eval_cards, evaluate
    from panel.runtime import open_runtime

    cards = eval_cards(paths)
    runtime = open_runtime(settings)
    try:
        show = output.Terminal(settings.max_cost, quiet=as_json)
        return await evaluate(runtime, cards, show, pairwise=pairwise)
    finally:
        await runtime.aclose()


def print_report(doc: dict[str, Any], html: Path | None) -> None:
    """Print the eval document as tables and lines."""
    _print_spread(doc)
    _print_probes(doc)
    _print_lines(doc)
    if "pairwise" in doc:
        _print_pairwise(doc["pairwise"], doc["personas"])
    if html is not None:
        output.say(f"wrote {html}")


def _print_spread(doc: dict[str, Any]) -> None:
    rows = [
        (
            p["display_name"],
            f"{p['provider']}:{p['model']}",
            str(p["answers"]),
            _num(p["mean"]),
            _num(p["sd"]),
            ""
            if not p["crowded_band"]
            else f"{p['crowded_band']['from']}–{p['crowded_band']['to']}: "
            f"{round(100 * p['crowded_band']['share'])}% (flagged)",
        )
        for p in doc["personas"].values()
    ]
    output.print_table(
        f"Spread over {len(doc['cards'])} card(s), {doc['samples']} sample(s) each",
        ("Persona", "Model", "Answers", "Mean", "SD", "Crowded band"),
        rows,
        right=("Answers", "Mean", "SD"),
    )


def _print_probes(doc: dict[str, Any]) -> None:
    probes = [
        (
            kind,
            _signed(p["mean_delta"]),
            _pct(p["flip_rate"]),
            _num(p.get("p_value"), 3),
            str(p["pairs"]),
            "FLAGGED" if p["flagged"] else "ok",
        )
        for kind, p in doc["perturbations"].items()
    ]
    output.print_table(
        "Probes (score change against the original card)",
        ("Probe", "Mean Δ", "Flips", "p", "Pairs", ""),
        probes,
        right=("Mean Δ", "Flips", "p", "Pairs"),
    )


def _print_lines(doc: dict[str, Any]) -> None:
    agreement, consistency, stability = doc["agreement"], doc["consistency"], doc["stability"]
    output.say(
        f"Agreement over {agreement['units']} card(s): Krippendorff's alpha "
        f"{_num(agreement['krippendorff_alpha'], 2)} (scores), Fleiss' kappa "
        f"{_num(agreement['fleiss_kappa'], 2)} (verdicts)"
    )
    output.say(
        f"Consistency: {consistency['answers']} answers, {consistency['follow_rule']} follow the "
        f"score rule, {consistency['reasked']} needed a re-ask, {consistency['invalid']} never "
        "became valid"
    )
    for failure in consistency["failures"]:
        output.say(
            f"  failed: {failure['tool']} ({failure['variant']}): {failure['persona']}: "
            f"{failure['error']}"
        )
    if stability["mean_sd"] is None:
        output.say("Stability: one sample per review (run with --samples 2 or more)")
    else:
        output.say(
            f"Stability: mean SD {_num(stability['mean_sd'])} points across samples, verdict "
            f"split in {_pct(stability['flip_rate'])} of sample sets"
        )
    labels = doc["labels"]
    if labels["cards"] < 2:
        output.say("Labels: needs two or more cards with `outcome:`")
    else:
        output.say(
            f"Labels ({labels['cards']} cards): pairwise accuracy "
            f"{_pct(labels['pairwise_accuracy'])}, Spearman {_num(labels['spearman'], 2)}, "
            f"AUC {_num(labels['auc'], 2)}"
        )
    cost = doc["cost"]
    usd = "unknown" if cost["usd"] is None else f"${cost['usd']:.4f}"
    output.say(
        f"Cost of this eval: {cost['calls']} call(s), {cost['input_tokens']} tokens in "
        f"({cost['cached_tokens']} cached), {cost['output_tokens']} out, {usd}"
    )


def _print_pairwise(pairwise: dict[str, Any], personas: dict[str, Any]) -> None:
    """Print the pairwise section: consistency per persona, accuracy against the labels."""
    consistency = pairwise["position_consistency"]
    rows = [
        (personas[key]["display_name"] if key in personas else key, _pct(value))
        for key, value in consistency["by_persona"].items()
    ]
    rows.append(("All personas", _pct(consistency["overall"])))
    output.print_table(
        f"Side by side: {pairwise['pairs']} labelled pair(s)",
        ("Persona", "Same pick in both orders"),
        rows,
        right=("Same pick in both orders",),
    )
    output.say(
        f"Pairwise accuracy against the labels: {_pct(pairwise['accuracy'])} judged side by "
        f"side, {_pct(pairwise['score_accuracy'])} from the absolute scores' pick "
        f"({_pct(pairwise['mean_score_accuracy'])} by mean score)"
    )
    for failure in pairwise["failures"]:
        output.say(f"  failed: {failure['tool']}: {failure['persona']}: {failure['error']}")


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{round(100 * value)}%"
