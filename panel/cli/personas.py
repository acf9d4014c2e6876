"""`panel personas`: who sits on the panel, what each judges and returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from panel.cli import output
from panel.cli.options import JsonOpt, PersonasOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings


@uses_settings()
def personas(settings: Settings, personas: PersonasOpt = None, as_json: JsonOpt = False) -> None:
    """List the panel: each persona, what it judges and the fields it returns."""
    from panel.personas import load_personas

    panel = load_personas(settings.personas_dir())
    if as_json:
        output.echo_json([p.model_dump(exclude={"source_hash"}) for p in panel], ensure_ascii=True)
        return
    rows = [
        (
            p.display_name,
            p.judges,
            ", ".join(["score", "verdict", "review", *p.fields]),
            f"{p.provider or '(default)'} {p.model or ''}",
        )
        for p in panel
    ]
    output.print_table(
        "The panel", ("Persona", "Judges", "Returns", "Model"), rows, show_lines=True
    )
