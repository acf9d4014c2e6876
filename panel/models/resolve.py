"""Which GGUF file a run of the local provider uses, and the grammar profile it is decoded with.

The choice (`local_model`: --local-model, PANEL_LOCAL_MODEL, the config file, where `panel
models use` writes it) is a catalogue name or a path to any GGUF file; none means the
catalogue's default. A catalogue model must be here and be the catalogue's file; a model not
pulled yet fails with the command that fetches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from panel.errors import ConfigError
from panel.models.catalogue import Catalogue, Entry, Profile, builtin_catalogue
from panel.models.place import located, models_dir, size_text, verified

if TYPE_CHECKING:
    from panel.config import Settings

ORIGINS = ("flag", "env", "config")
"""Where a setting came from, the strongest first."""
CAPABLE: Profile = "capable"
"""The profile of a GGUF file the catalogue does not know."""


@dataclass(frozen=True)
class LocalModel:
    """A model file a run can load."""

    path: Path
    name: str
    """The catalogue name, or the file's name for a file the catalogue does not know."""
    profile: Profile
    entry: Entry | None
    """The catalogue entry the file is (None: a GGUF file of the user's own)."""


def chosen_name(choice: str | None, catalogue: Catalogue) -> str:
    """Return the local model a run uses: the choice, else the catalogue's default."""
    return choice.strip() if choice and choice.strip() else catalogue.default


def chosen_model(settings: Settings, catalogue: Catalogue | None = None) -> LocalModel:
    """Return the local model the settings choose: local_model or, with the local provider,
    model (as a flag, --model beats PANEL_LOCAL_MODEL), else the catalogue's default."""
    given = [("local_model", settings.local_model)]
    if settings.provider == "local":
        given.append(("model", settings.model))
    ranked = sorted(
        (ORIGINS.index(settings.origin(name)), order, value)
        for order, (name, value) in enumerate(given)
        if value
    )
    choice = ranked[0][2] if ranked else None
    return resolve_local_model(choice, settings.models_dir, catalogue)


def resolve_local_model(
    choice: str | None, folder: Path | None = None, catalogue: Catalogue | None = None
) -> LocalModel:
    """Return the model a run uses: a catalogue model present and verified, or a GGUF file.

    folder is the models folder setting (None: the user's data folder).
    """
    catalogue = catalogue or builtin_catalogue()
    name = chosen_name(choice, catalogue)
    if name in catalogue.models:
        return _catalogue_model(catalogue.entry(name), models_dir(folder))
    path = Path(name).expanduser()
    if path.suffix.lower() != ".gguf" and not path.is_file():
        catalogue.entry(name)  # fails, naming the models there are
    if not path.is_file():
        raise ConfigError("local model file not found", path=str(path))
    entry = catalogue.by_file(path.name)
    if entry is not None and path.stat().st_size != entry.size:
        entry = None
    return LocalModel(path, path.name, entry.profile if entry else CAPABLE, entry)


def _catalogue_model(entry: Entry, folder: Path) -> LocalModel:
    path = located(entry, folder)
    if path is None:
        raise ConfigError(
            f"the local model {entry.name} is not here: fetch it with "
            f"`panel models pull {entry.name}` ({size_text(entry.size)})"
        )
    if not verified(entry, path, folder):
        raise ConfigError(
            f"the local model {entry.name} is not the catalogue's file (its size or SHA-256 "
            f"differ): fetch it again with `panel models pull {entry.name}`",
            path=str(path),
        )
    return LocalModel(path, entry.name, entry.profile, entry)
