"""`panel eval`: how far the panel as configured can be trusted, measured on a set of cards, as
tables and lines (the HTML report is panel.eval.report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import JsonOpt, uses_settings
from panel.errors import InputError
from panel.eval.fmt import effect, num, reused_cost, share, signed

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.mitigations import Mitigations
    from panel.runs.eval import Evaluated

DEFAULT_CARDS = "examples"


@uses_settings(run=True)
def eval_command(
    settings: Settings,
    cards: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="CARD",
            help="Tool card files, folders of them, or launch page URLs. Default: examples/.",
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
    mitigations: Annotated[
        str | None,
        typer.Option(
            "--mitigations",
            metavar="NAME,...",
            help="Run the probes without and with these mitigations (rotate-fields, "
            "blind-names, strip-injection) and report the two side by side (JSON "
            "`mitigations`). Twice the calls.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure the panel: the spread of each persona's scores, their agreement, consistency,
    the stability of samples (--samples 2 or more), the score change under five probes of every
    card (repeat, the null one, then padding, injection, order, brand: each read against the
    null), the link between description length and score, agreement with labelled outcomes
    (a card's `outcome:`), and the eval's own cost.

    Each card is reviewed with its five probes, 6 x 4 x N calls a card (twice with
    --mitigations); stored reviews are reused, so a second run makes no call. Exit 3 if
    --max-cost stopped it.
    """
    from panel.mitigations import Mitigations

    compare = None
    if mitigations is not None:
        compare = Mitigations.named(mitigations.split(","))
        if not compare.names:
            raise InputError("name one or more mitigations", field="--mitigations")
    evaluated = output.run(_eval(settings, cards or [DEFAULT_CARDS], as_json, compare, pairwise))
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
    settings: Settings,
    args: list[str],
    as_json: bool,
    compare: Mitigations | None,
    pairwise: bool = False,
) -> Evaluated:
    from panel.eval.evaluate import cards_to_test
    from panel.runs.eval import eval_cards, evaluate
    from panel.runtime import open_runtime

    runtime = open_runtime(settings)
    try:
        cards = await eval_cards(runtime, args)
        needed = cards_to_test()
        too_few = [
            f"{len(cards)} card(s): too few to test the probes for bias (the per-card test "
            f"needs {needed}); this eval measures spread, agreement and noise, not bias"
        ]
        terminal = output.Terminal(
            settings.max_cost,
            quiet=as_json,
            always_announce=True,
            preface=too_few if len(cards) < needed else [],
        )
        return await evaluate(runtime, cards, terminal, compare, pairwise=pairwise)
    finally:
        await runtime.aclose()


def print_report(doc: dict[str, Any], html: Path | None) -> None:
    """Print the eval document: its headline, tables and lines."""
    for line in doc["headline"]:
        output.say(line)
    _print_spread(doc)
    _print_probes(doc)
    _print_cards(doc)
    if doc.get("mitigations"):
        _print_mitigations(doc["mitigations"])
    _print_lines(doc)
    if "pairwise" in doc:
        _print_pairwise(doc["pairwise"], doc["personas"])
    if html is not None:
        output.say(f"wrote {html}")


def _print_spread(doc: dict[str, Any]) -> None:
    length = doc["length"]["by_persona"]
    rows = [
        (
            p["display_name"],
            f"{p['provider']}:{p['model']}",
            str(p["answers"]),
            num(p["mean"]),
            num(p["sd"]),
            ""
            if not p["crowded_band"]
            else f"{p['crowded_band']['from']}–{p['crowded_band']['to']}: "
            f"{round(100 * p['crowded_band']['share'])}% (flagged)",
            num((length.get(key) or {}).get("spearman"), 2),
        )
        for key, p in doc["personas"].items()
    ]
    output.print_table(
        f"Spread over {len(doc['cards'])} card(s), {doc['samples']} sample(s) each",
        ("Persona", "Model", "Answers", "Mean", "SD", "Crowded band", "Length ρ"),
        rows,
        right=("Answers", "Mean", "SD", "Length ρ"),
    )


def _probe_cells(row: dict[str, Any]) -> tuple[str, ...]:
    beyond = row.get("beyond_noise") or {}
    return (
        signed(row["mean_delta"]),
        _interval(row.get("ci")),
        share(row["flip_rate"]),
        signed(beyond.get("mean_delta")),
        num(row.get("p_value"), 3),
        row.get("reading_text", row.get("reading", "ok")),
    )


def _print_probes(doc: dict[str, Any]) -> None:
    probes = [(kind, *_probe_cells(p)) for kind, p in doc["perturbations"].items()]
    output.print_table(
        f"Probes over {doc['power']['cards']} card(s): change against the original card "
        "(repeat: the noise)",
        ("Probe", "Mean Δ", "95% CI", "Flips", "Beyond noise", "p", "Reading"),
        probes,
        right=("Mean Δ", "95% CI", "Flips", "Beyond noise", "p"),
    )


def _print_cards(doc: dict[str, Any]) -> None:
    kinds = list(doc["perturbations"])
    rows = [
        (
            card["slug"],
            num(card["score_mean"]),
            *(signed(card["changes"].get(kind)) for kind in kinds),
            ", ".join(card["moved_by"]) or "—",
        )
        for card in doc["cards"]
    ]
    output.print_table(
        "Cards (each probe's change on the card's mean score)",
        ("Card", "Mean", *kinds, "Moved by"),
        rows,
        right=("Mean", *kinds),
    )


def _print_mitigations(compared: dict[str, Any]) -> None:
    rows = [
        (
            kind,
            signed(effect(sides["before"])),
            sides["before"]["reading"],
            signed(effect(sides["after"])),
            sides["after"]["reading"],
        )
        for kind, sides in compared["probes"].items()
    ]
    output.print_table(
        f"Without and with {', '.join(compared['names'])}: change beyond the noise",
        ("Probe", "Before", "", "After", ""),
        rows,
        right=("Before", "After"),
    )
    before, after = compared["reviews"]["before"], compared["reviews"]["after"]
    output.say(
        f"What they cost the reviews: {num(before['review_chars'], 0)} → "
        f"{num(after['review_chars'], 0)} characters a review, naming the tool or its maker "
        f"{share(before['names_share'])} → {share(after['names_share'])}, "
        f"{share(after['placeholder_share'])} name a placeholder, score SD "
        f"{num(before['score_sd'])} → {num(after['score_sd'])}, labelled pairs ordered "
        f"{share(before['pairwise_accuracy'])} → {share(after['pairwise_accuracy'])}"
    )


def _print_lines(doc: dict[str, Any]) -> None:
    agreement, consistency, stability = doc["agreement"], doc["consistency"], doc["stability"]
    output.say(
        f"Agreement over {agreement['units']} card(s): Krippendorff's alpha "
        f"{num(agreement['krippendorff_alpha'], 2)} (scores), Fleiss' kappa "
        f"{num(agreement['fleiss_kappa'], 2)} (verdicts); agreement is not correctness"
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
    if stability["pooled_sd"] is None:
        output.say("Stability: one sample per review (run with --samples 2 or more)")
    else:
        output.say(
            f"Stability: pooled SD {num(stability['pooled_sd'])} points across samples (every "
            f"set at temperature {stability['temperature']:g}), verdict split in "
            f"{share(stability['flip_rate'])} of sample sets"
        )
    labels = doc["labels"]
    if labels["cards"] < 2:
        output.say("Labels: needs two or more cards with `outcome:`")
    else:
        output.say(
            f"Labels ({labels['cards']} cards): pairwise accuracy "
            f"{share(labels['pairwise_accuracy'])}, Spearman {num(labels['spearman'], 2)}, "
            f"AUC {num(labels['auc'], 2)}"
        )
    cost, reused = doc["cost"], doc["cost"]["reused"]
    output.say(
        f"Cost of this eval: {cost['calls']} call(s), {cost['input_tokens']} tokens in "
        f"({cost['cached_tokens']} cached), {cost['output_tokens']} out, {_usd(cost['usd'])}; "
        f"{reused['reviews']} stored review(s) reused, which cost {reused_cost(reused)} when made"
    )


def _print_pairwise(pairwise: dict[str, Any], personas: dict[str, Any]) -> None:
    """Print the pairwise section: consistency per persona, accuracy against the labels."""
    consistency = pairwise["position_consistency"]
    rows = [
        (personas[key]["display_name"] if key in personas else key, share(value))
        for key, value in consistency["by_persona"].items()
    ]
    rows.append(("All personas", share(consistency["overall"])))
    output.print_table(
        f"Side by side: {pairwise['pairs']} labelled pair(s)",
        ("Persona", "Same pick in both orders"),
        rows,
        right=("Same pick in both orders",),
    )
    output.say(
        f"Pairwise accuracy against the labels: {share(pairwise['accuracy'])} judged side by "
        f"side, {share(pairwise['score_accuracy'])} from the absolute scores' pick "
        f"({share(pairwise['mean_score_accuracy'])} by mean score)"
    )
    read = pairwise.get("probabilities")
    if read:
        output.say(
            f"Read from the judges' probabilities ({read['pairs']} pair(s), both orders "
            f"combined): accuracy {share(read['accuracy'])} against "
            f"{share(read['answer_accuracy'])} for the sampled answers; the same lean in both "
            f"orders {share(read['consistency'])}; lean towards the card shown first "
            f"{'—' if read['position_lean'] is None else format(read['position_lean'], '+.2f')}; "
            f"expected scores' order "
            f"{share(read['expected_score_accuracy'])}"
        )
    for failure in pairwise["failures"]:
        output.say(f"  failed: {failure['tool']}: {failure['persona']}: {failure['error']}")


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _interval(value: list[float | None] | None) -> str:
    if not value or value[0] is None or value[1] is None:
        return "—"
    return f"{signed(value[0])}…{signed(value[1])}"
