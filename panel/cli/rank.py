"""`panel rank`: the stored tools ranked from every judged pair, with intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import DbOpt, JsonOpt, PersonasOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings


@uses_settings()
def rank(
    settings: Settings,
    category: Annotated[
        str | None,
        typer.Option(
            "--category",
            metavar="NAME",
            help='Rank only the tools of this category (a card\'s "category", any case).',
        ),
    ] = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rank the stored tools from every judged pair (compare, queue add or eval --pairwise).

    Each persona's answer in each order is one comparison (a tie is half a win each); a
    Bradley-Terry model (choix's estimate, fitted on the sparse graph of the pairs) gives each
    tool a strength, 0 being the ranked tools' mean, with a 90% interval from the fit's
    standard errors, each pair's judgments counted as one draw. Only tools joined by judged
    pairs are ranked; the rest are listed apart. No model call.
    """
    from panel.errors import InputError
    from panel.personas import load_personas
    from panel.rank import categories, ranking
    from panel.store import Store

    keys = {p.key for p in load_personas(settings.personas_dir())}
    store = Store(settings.db, write=False, first="panel compare --pairwise")
    try:
        tools, judgments = store.tools(), store.latest_pairs()
    finally:
        store.close()
    known = categories(tools)
    if category is not None and category.casefold() not in {c.casefold() for c in known}:
        raise InputError(
            f"no stored tool in category {category!r} (categories: {', '.join(known) or 'none'})"
        )
    document = ranking(tools, [j for j in judgments if j.persona in keys], category)
    if as_json:
        output.echo_json(document)
    else:
        print_ranking(document)


def print_ranking(document: dict[str, Any]) -> None:
    """Print the ranking as a table, the tools left unranked and what it rests on."""
    scope = f" · {document['category']}" if document["category"] else ""
    names = [tool["name"] for tool in document["tools"]]
    rows = [
        (
            str(tool["tier"]),
            # two tools of one name are told apart by their slugs
            f"{tool['name']} ({tool['slug']})" if names.count(tool["name"]) > 1 else tool["name"],
            f"{tool['picked_pct']}%",
            f"{tool['picked_low']}–{tool['picked_high']}%",
            f"{tool['strength']:+.2f}",
            str(tool["pairs"]),
        )
        for tool in document["tools"]
    ]
    if rows:
        output.print_table(
            f"Ranking{scope}: {document['pairs']} judged pair(s), {document['judgments']} "
            "judgment(s)",
            ("Tier", "Tool", "Picked over the average", "90% interval", "Strength", "Pairs"),
            rows,
            right=("Tier", "Picked over the average", "90% interval", "Strength", "Pairs"),
        )
        output.say(settled_line(document["settled"], len(rows)))
    else:
        output.say(
            f"No judged pair{scope}: judge pairs with `panel compare A B --pairwise` or "
            "`panel queue add FILE --pairwise`"
        )
    for tool in document["unranked"]:
        output.say(f"not ranked: {tool['name']} ({tool['slug']}): {tool['reason']}")


def settled_line(settled: dict[str, Any], ranked: int) -> str:
    """Return what the intervals settle, in a line: who is first, or that the top is open."""
    if settled["first"]:
        return f"First: {settled['first']} (its interval clears every other tool's)."
    if settled["tiers"] <= 1:
        return f"Not settled: the {ranked} tools' intervals overlap; the order is a best guess."
    return (
        f"Not settled at the top: {', '.join(settled['top'])} share the first tier "
        f"(their intervals overlap); {settled['tiers']} tiers in all."
    )
