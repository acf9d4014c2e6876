"""`panel eval`: how far the panel as configured can be trusted, measured on a set of cards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import (
    BaseUrlOpt,
    CassettesOpt,
    ConcurrencyOpt,
    DbOpt,
    JsonOpt,
    MaxCostOpt,
    ModelOpt,
    OutOpt,
    PersonaModelOpt,
    PersonasOpt,
    PromptsOpt,
    ProviderOpt,
    RecordOpt,
    SamplesOpt,
    StructuredOpt,
    settings_from,
)

if TYPE_CHECKING:
    from panel.config import Settings

DEFAULT_CARDS = Path("examples")


def evaluate(
    cards: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Tool card files, or folders of them. Default: examples/.", show_default=False
        ),
    ] = None,
    samples: SamplesOpt = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report as one self-contained HTML page."),
    ] = None,
    persona_model: PersonaModelOpt = None,
    max_cost: MaxCostOpt = None,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    concurrency: ConcurrencyOpt = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    record: RecordOpt = None,
    cassettes: CassettesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure the panel: the spread of each persona's scores, their agreement, consistency,
    the stability of samples (--samples 2 or more), the score change under four probes of every
    card (padding, injection, order, brand), agreement with labelled outcomes (a card's
    `outcome:`), and the eval's own cost.

    Each card is reviewed with its four probes, 5 x 4 x N calls a card; stored reviews are
    reused, so a second run makes no call. Exit 3 if --max-cost stopped it.
    """
    settings = output.guard(settings_from, locals())
    output.run(_evaluate(settings, cards or [DEFAULT_CARDS], html, as_json))


def card_files(paths: list[Path]) -> list[Path]:
    """Return the card files named: files as given, folders as their *.yaml, *.yml, *.json."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json")
            )
        else:
            found.append(path)
    return found


async def _evaluate(
    settings: Settings, paths: list[Path], html: Path | None, as_json: bool
) -> None:
    from panel.cards import load_cards
    from panel.errors import InputError
    from panel.eval.evaluate import collect, eval_document, variants
    from panel.files import write_atomic
    from panel.runtime import open_runtime

    files = card_files(paths)
    if not files:
        raise InputError(f"no card files in {', '.join(str(p) for p in paths)}")
    cards = load_cards(files)
    runtime = open_runtime(settings)
    try:
        reviewed = [probe for _, _, probe in variants(cards)]
        planned = runtime.reviewer.plan(reviewed, runtime.personas)
        output.announce(planned, settings.max_cost, runtime.store.output_tokens_seen)
        total = len(reviewed) * len(runtime.personas) * runtime.reviewer.samples
        with output.ReviewProgress(total, not as_json) as advance:
            collected = await collect(runtime, cards, on_done=advance)
        document = eval_document(runtime, cards, collected)
    finally:
        await runtime.aclose()
    if html is not None:
        from panel.eval.report import eval_html

        write_atomic(html, eval_html(document))
    if as_json:
        output.echo_json(document)
    else:
        print_report(document, html)


def print_report(doc: dict[str, Any], html: Path | None) -> None:
    """Print the eval document as tables and lines."""
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
    if html is not None:
        output.say(f"wrote {html}")


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{round(100 * value)}%"
