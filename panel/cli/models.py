"""`panel models`: the local models of the catalogue, where they are, fetching and choosing one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import JsonOpt, settings_from

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.models.catalogue import Catalogue, Entry

app = typer.Typer(
    help="Local models: the catalogue, where each one is, fetching (pull) and choosing (use) one.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="A model of the catalogue (panel models list).")
]


def _catalogue() -> Catalogue:
    from panel.models.catalogue import builtin_catalogue

    return builtin_catalogue()


def _folder(settings: Settings) -> Path:
    from panel.models.place import models_dir

    return models_dir(settings.models_dir)


@app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """Every model of the catalogue: size, licence, where it is, whether it is verified, and
    which one runs by default (*)."""
    from panel.models.resolve import chosen_name

    settings, catalogue = settings_from({}), _catalogue()
    default, folder = chosen_name(settings.local_model, catalogue), _folder(settings)
    rows = [_status(entry, folder, entry.name == default) for entry in catalogue.models.values()]
    if as_json:
        output.echo_json(rows)
        return
    output.print_table(
        f"Local models ({folder})",
        ("", "Name", "Size", "Licence", "Where", "Verified"),
        [
            (
                "*" if row["default"] else "",
                row["name"],
                _size(row["size"]),
                row["licence"],
                row["where"],
                {True: "yes", False: "NO", None: ""}[row["verified"]],
            )
            for row in rows
        ],
        right=("Size",),
    )
    if any(row["path"] is None for row in rows):
        output.note("fetch a model with `panel models pull NAME`")
    if default not in catalogue.models:
        output.note(f"the default local model is a file of your own: {default}")


def _status(entry: Entry, folder: Path, is_default: bool) -> dict[str, Any]:
    from panel.models.place import located, verified

    path = located(entry, folder)
    where = "not pulled" if path is None else "pulled" if path.parent == folder else "installed"
    if where == "installed" and entry.mirror is not None:  # in its one-wheel mirror's package
        where = f"in {entry.mirror.part_package(1)}"
    return {
        "name": entry.name,
        "default": is_default,
        "description": entry.description,
        "file": entry.file,
        "size": entry.size,
        "sha256": entry.sha256,
        "licence": entry.licence,
        "profile": entry.profile,
        "path": str(path) if path else None,
        "where": where,
        "verified": verified(entry, path, folder) if path else None,
    }


def _size(size: int) -> str:
    from panel.models.place import size_text

    return size_text(size)


@app.command("pull")
def pull(name: NameArg) -> None:
    """Fetch a model: from the Hugging Face Hub (HF_ENDPOINT, HF_HUB_OFFLINE), else from its
    mirror on the package index (pip's settings: PIP_INDEX_URL, ...); kept only if its size and
    SHA-256 are the catalogue's. Nothing to do when it is here and verified."""
    from panel.models.pull import pull as pull_model

    settings = settings_from({})
    entry = _catalogue().entry(name)
    started = time.monotonic()
    with output.ByteProgress() as show:
        pulled = pull_model(entry, _folder(settings), show)
    if pulled.source == "already here":
        output.say(f"{name} is here and verified: {pulled.path}")
        return
    seconds = time.monotonic() - started
    output.say(f"{name}: verified, from {pulled.source} in {seconds:.0f} s: {pulled.path}")


@app.command("use")
def use(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME|FILE", help="A model of the catalogue, or a GGUF file of your own."
        ),
    ],
) -> None:
    """Make a model the default of the local provider (local_model in your config file)."""
    from panel.config import write_setting
    from panel.models.place import located

    settings, catalogue = settings_from({}), _catalogue()
    if name in catalogue.models:
        value = name
        if located(catalogue.entry(name), _folder(settings)) is None:
            output.note(f"{name} is not here yet: fetch it with `panel models pull {name}`")
    else:
        from panel.models.resolve import resolve_local_model

        value = str(resolve_local_model(name, settings.models_dir, catalogue).path.resolve())
    path = write_setting("local_model", value)
    output.say(f"the default local model is now {value} (local_model in {path})")
    if settings.origin("local_model") == "env":
        output.note("PANEL_LOCAL_MODEL is set and wins over the config file")


@app.command("rm")
def rm(name: NameArg) -> None:
    """Remove a pulled model (and what an unfinished pull of it kept)."""
    from panel.errors import InputError
    from panel.models.place import forget, pulled_path, remove_quietly, remove_staging, staging_dir

    settings, entry = settings_from({}), _catalogue().entry(name)
    folder = _folder(settings)
    path, stage = pulled_path(entry, folder), staging_dir(entry, folder)
    if not path.exists() and not stage.exists():
        raise InputError(f"{name} is not pulled: nothing to remove", path=str(folder))
    remove_quietly(path)
    remove_staging(stage)
    forget(path, folder)
    output.say(f"removed {name} ({path})")


@app.command("path")
def path(
    name: Annotated[
        str | None,
        typer.Argument(metavar="[NAME]", help="A model of the catalogue; default: the default."),
    ] = None,
) -> None:
    """Print the file of a model (verified), for scripts; fails naming the pull command if it is
    not here."""
    from panel.models.resolve import resolve_local_model

    settings = settings_from({})
    chosen = resolve_local_model(name or settings.local_model, settings.models_dir, _catalogue())
    output.say(str(chosen.path))
