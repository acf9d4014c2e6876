"""The options commands share, declared once, and the one way a command turns its flags into
Settings (`uses_settings`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from panel.config import Settings

ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        "-p",
        metavar="NAME",
        help="local (default, embedded), openai or anthropic. Env: PANEL_PROVIDER.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="MODEL",
        help="Model name (local: as --local-model). Env: PANEL_MODEL.",
    ),
]
LocalModelOpt = Annotated[
    str | None,
    typer.Option(
        "--local-model",
        metavar="NAME|FILE",
        help="The local provider's model: a catalogue name (panel models list) or a GGUF file. "
        "Env: PANEL_LOCAL_MODEL. Default: panel models use's choice, else qwen2.5-coder-1.5b.",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        metavar="URL",
        help="OpenAI-compatible or Anthropic-compatible endpoint. Env: PANEL_BASE_URL, "
        "OPENAI_BASE_URL, ANTHROPIC_BASE_URL.",
    ),
]
StructuredOpt = Annotated[
    str | None,
    typer.Option(
        "--structured-output",
        metavar="MODE",
        help="openai provider: json_schema (OpenAI, vLLM, Ollama) or json_object "
        "(llama-cpp-python server). Env: PANEL_STRUCTURED_OUTPUT.",
    ),
]
LogprobsOpt = Annotated[
    bool | None,
    typer.Option(
        "--logprobs/--no-logprobs",
        help="openai provider: ask for each token's top_logprobs and read a pick and a score as "
        "probabilities beside the sampled answer (the local model always does). Env: "
        "PANEL_LOGPROBS.",
        show_default=False,
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "-c",
        metavar="N",
        help="Model calls in flight at once (remote providers; for `queue run`, its workers). "
        "Default 8.",
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH|URL",
        help="The store: a SQLite file, or a postgresql://user:password@host/db URL shared by "
        "several machines. Env: PANEL_DB. Default ./panel.db.",
    ),
]
PersonasOpt = Annotated[
    Path | None,
    typer.Option(
        "--personas", metavar="DIR", help="Folder of persona files. Default: the built-in panel."
    ),
]
PromptsOpt = Annotated[
    Path | None,
    typer.Option("--prompts", metavar="DIR", help="Folder of prompt templates. Default: built-in."),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", metavar="DIR", help="Output folder. Env: PANEL_OUT. Default ./outputs."
    ),
]
RecordOpt = Annotated[
    Path | None,
    typer.Option(
        "--record", metavar="DIR", help="Save every model call as a cassette file in this folder."
    ),
]
CassettesOpt = Annotated[
    Path | None,
    typer.Option(
        "--cassettes",
        metavar="DIR",
        help="Cassette folder for --provider replay (answers only from recordings).",
    ),
]
SamplesOpt = Annotated[
    int | None,
    typer.Option(
        "--samples",
        metavar="N",
        min=1,
        max=50,
        help="Answers per persona (default 1). Scores become means with their spread (72 ± 6); "
        "several samples run at temperature 0.7 unless PANEL_TEMPERATURE says otherwise. Stored "
        "samples are reused: a larger N asks only for the missing ones.",
    ),
]
MaxCostOpt = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        metavar="USD",
        help="US dollars this run may spend at most: no call starts that could cross it; what "
        "is done is kept, the rest stays pending (exit 3). Refused for a model with no known price.",
    ),
]
PricesOpt = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        metavar="FILE",
        help="A prices file of your own (TOML, as the built-in prices.toml: [provider] "
        '"model" = [input, cached input, output] USD per million tokens), over the built-in '
        "prices: --max-cost then works for models on your own server. Env: PANEL_PRICES.",
    ),
]
PersonaModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--persona-model",
        metavar="PERSONA=PROVIDER:MODEL",
        help="PERSONA=PROVIDER:MODEL, e.g. skeptic=anthropic:claude-haiku-4-5 or builder=local: "
        "this persona answers with that model (repeatable; a panel may mix providers).",
    ),
]
RotateFieldsOpt = Annotated[
    bool | None,
    typer.Option(
        "--rotate-fields/--no-rotate-fields",
        help="Show the judges the card's fields in the panel's own order, rotated across "
        "samples so every field takes every position and every pair both orders equally often "
        "(use --samples 2 or more). Env: PANEL_ROTATE_FIELDS.",
        show_default=False,
    ),
]
BlindNamesOpt = Annotated[
    bool | None,
    typer.Option(
        "--blind-names/--no-blind-names",
        help="Hide the tool's name, its maker and famous brands from the judges ([TOOL], "
        "[MAKER], [COMPANY]); the Founder is told what kind of maker it is. Pages keep the "
        "names. Env: PANEL_BLIND_NAMES.",
        show_default=False,
    ),
]
StripInjectionOpt = Annotated[
    bool | None,
    typer.Option(
        "--strip-injection/--no-strip-injection",
        help="Replace the lines the injection scan flags by a placeholder before judging; the "
        "review says so. Env: PANEL_STRIP_INJECTION.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
AllowPrivateOpt = Annotated[
    bool | None,
    typer.Option(
        "--allow-private/--no-allow-private",
        help="Let a launch page or feed (a URL given for a card, `queue add --feed`) be "
        "fetched from a loopback, private or link-local address: tests, intranets. Env: "
        "PANEL_ALLOW_PRIVATE.",
        show_default=False,
    ),
]


def _run_options(
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    local_model: LocalModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    logprobs: LogprobsOpt = None,
    concurrency: ConcurrencyOpt = None,
    samples: SamplesOpt = None,
    persona_model: PersonaModelOpt = None,
    max_cost: MaxCostOpt = None,
    prices: PricesOpt = None,
    rotate_fields: RotateFieldsOpt = None,
    blind_names: BlindNamesOpt = None,
    strip_injection: StripInjectionOpt = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    record: RecordOpt = None,
    cassettes: CassettesOpt = None,
    allow_private: AllowPrivateOpt = None,
) -> None:
    """The options of every command that runs the panel (review, compare, eval, queue run)."""


RUN_OPTIONS = tuple(inspect.signature(_run_options, eval_str=True).parameters.values())
MODEL_OPTIONS = tuple(
    p
    for p in RUN_OPTIONS
    if p.name
    in {"provider", "model", "local_model", "base_url", "structured_output", "logprobs"}
    | {"max_cost", "prices", "db", "prompts", "record", "cassettes", "allow_private"}
)
"""The options of a command that asks the model but runs no panel (`panel card`)."""


def uses_settings(
    *, run: bool = False, asks: bool = False
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Make a command take `settings` built from its flags: those of its own parameters that
    name a setting and, with run, the options every run shares (RUN_OPTIONS, declared once
    here; with asks, those of them a command that only asks the model needs: MODEL_OPTIONS),
    then PANEL_* variables, then the config file. A flag left at None is "not given".
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = _parameters(command)
        shared = RUN_OPTIONS if run else MODEL_OPTIONS if asks else ()
        names = {p.name for p in shared}

        @functools.wraps(command)
        def wrapper(**flags: Any) -> None:
            settings = settings_from(flags)
            command(settings=settings, **{k: v for k, v in flags.items() if k not in names})

        parameters = [*own, *(p for p in shared if p.name not in {q.name for q in own})]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate


def _parameters(command: Callable[..., None]) -> list[inspect.Parameter]:
    """Return command's parameters but `settings`, their annotations evaluated (the module may
    import the type of `settings` for type checking only)."""
    found = []
    for p in inspect.signature(command).parameters.values():
        if p.name == "settings":
            continue
        annotation = p.annotation
        if isinstance(annotation, str):
            annotation = eval(annotation, command.__globals__)
        found.append(p.replace(annotation=annotation))
    return found


def in_range(flag: str, value: float, low: float, high: float, unit: str = "") -> float:
    """Return a flag's number if it is finite and from low to high, else raise InputError (one
    line, exit 2): a flag with a physical meaning (seconds, a count) takes no NaN, infinity,
    zero or negative amount it cannot mean."""
    import math

    from panel.errors import InputError

    if not math.isfinite(value) or not low <= value <= high:
        what = f" {unit}" if unit else ""
        raise InputError(f"{flag} must be from {low:g} to {high:g}{what} (got {value!r})")
    return value


def settings_from(flags: dict[str, Any], **more: Any) -> Settings:
    """Return the settings of a command: its flags that name a setting, then PANEL_* variables,
    then the config file.

    A flag left at None is "not given"; `more` adds values under other names.
    """
    from panel.config import Settings, load_settings

    given = {k: v for k, v in flags.items() if k in Settings.model_fields}
    return load_settings(**given, **more)
