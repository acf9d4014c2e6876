"""Settings: command-line flags win over environment variables, which win over a config file.

The config file is the one the user names (`--config FILE`, which sets PANEL_CONFIG), else
`config.toml` in the user's own config folder (platformdirs: ~/.config/panel/ on Linux), never
a file found in the working directory: a cloned folder must not steer panel. Its keys are the
field names of Settings. A base URL from a config file gets no API key from the environment
(see `key_goes_to`). Also here: where the default personas and prompts live.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from panel.errors import ConfigError, InputError, add_secret, add_secret_url, validation_problem
from panel.files import read_capped

MAX_CONFIG_BYTES = 64 * 1024
PACKAGE_DIR = Path(__file__).resolve().parent

ENV_PREFIX = "PANEL_"
CONFIG_NAME = "config.toml"

OFFICIAL_HOSTS = {"OPENAI": "api.openai.com", "ANTHROPIC": "api.anthropic.com"}
"""The endpoint each provider's API key belongs to, by the key's environment prefix."""


SECRET_SETTINGS = ("signing_key", "submit_token")
"""Settings whose value is never shown, not even in the error that refuses it."""


def _words(value: Any) -> Any:
    """Return a PANEL_* string of several values ("a=b c=d" or "a=b,c=d") as a list."""
    return value.replace(",", " ").split() if isinstance(value, str) else value


def _http_url(value: str | None) -> str | None:
    """Return a base URL that is one: http(s), with a host (a malformed one is refused here,
    once, instead of failing deep in a client)."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value.strip())
        _ = parts.port  # reads the port: a port that is no number raises here
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value.strip()


_PATH_AS_TEXT = BeforeValidator(lambda v: str(v) if isinstance(v, os.PathLike) else v)
"""A setting that is text but may be given as a path (a file, or a name or URL)."""

SOURCES = {"flag": "--{flag}", "env": "PANEL_{env}", "config": "{key} in the config file"}
"""How a setting's origin is named in an error: the flag, the variable or the config key."""

MIB = 2**20


class Settings(BaseModel):
    """Every knob panel has, with its default."""

    model_config = ConfigDict(extra="forbid")

    provider: str = "local"
    model: str | None = None
    """None means the provider's default model."""
    base_url: Annotated[str | None, AfterValidator(_http_url)] = None
    structured_output: Literal["json_schema", "json_object"] = "json_schema"
    """OpenAI-compatible servers: json_schema (OpenAI, vLLM, Ollama) or json_object with a
    schema (llama-cpp-python's server, which answers 500 to json_schema)."""
    logprobs: bool = False
    """OpenAI-compatible servers: ask for each token's top_logprobs and read the answer's
    decisions as probabilities (panel.providers.decisions; the local model always does)."""
    concurrency: Annotated[int, Field(ge=1, le=512)] = 8
    db: Annotated[str, _PATH_AS_TEXT] = "panel.db"
    """The store: a SQLite file path, or a postgresql:// URL (`pip install 'panel[postgres]'`)."""
    out: Path = Path("outputs")
    personas: Path | None = None
    prompts: Path | None = None
    local_model: Annotated[str | None, _PATH_AS_TEXT] = None
    """The local provider's model: a catalogue name (`panel models list`) or a GGUF file's
    path; None: the catalogue's default (qwen2.5-coder-1.5b). `panel models use` sets it."""
    models_dir: Path | None = None
    """Where `panel models pull` keeps models; None: models/ in the user's data folder."""
    rpm: Annotated[int, Field(ge=1, le=10**9)] | None = None
    """Requests per minute allowed per provider (None: no limit)."""
    tpm: Annotated[int, Field(ge=1, le=10**12)] | None = None
    """Tokens per minute allowed per provider (None: no limit)."""
    record: Path | None = None
    """Write a cassette of every model call into this folder."""
    cassettes: Path | None = None
    """Where the replay provider finds its cassettes."""
    max_tokens: Annotated[int, Field(ge=64, le=32000)] = 1200
    samples: Annotated[int, Field(ge=1, le=50)] = 1
    """Answers per persona and card (--samples N); the panel uses their mean."""
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    """None: 0 for one sample, rules.SAMPLES_TEMPERATURE for several (samples that never vary
    say nothing of a judge's noise); see Reviewer.temperature_for."""
    seed: int = 7
    max_cost: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """US dollars a run may spend at most (--max-cost); None: no ceiling."""
    prices: Path | None = None
    """A prices file of the user's own (the format of providers/prices.toml), layered over the
    built-in prices: its entries add models and replace built-in figures."""
    persona_model: Annotated[list[str], BeforeValidator(_words)] = []
    """PERSONA=PROVIDER:MODEL overrides of the personas' own models (--persona-model)."""
    rotate_fields: bool = False
    """Show the card's fields in the panel's order, rotated across samples (balanced)."""
    blind_names: bool = False
    """Hide the tool's name, its maker and brand words from the judges."""
    strip_injection: bool = False
    """Replace the lines the injection scan flags by a placeholder before judging."""
    timeout: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 120.0
    """Seconds one model call may take in all (connect, and every byte of the answer)."""
    max_response_bytes: Annotated[int, Field(ge=64 * 1024, le=1024 * MIB)] = 8 * MIB
    """The most bytes a model server's answer may hold once decompressed; a longer one fails
    the call (a review is a few KiB; a batch's result file may hold 64 times this)."""
    allow_private: bool = False
    """Let a launch page (`panel card`, a URL for a card, a feed) be fetched from a loopback,
    private or link-local address: tests and intranets (never the cloud's metadata by
    accident)."""
    fetch_timeout: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 20.0
    """Seconds fetching one launch page or feed may take in all, every redirect included."""
    max_page_bytes: Annotated[int, Field(ge=64 * 1024, le=256 * MIB)] = 5 * MIB
    """The most bytes a launch page or feed may hold once decompressed."""
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    """Attempts per call on transient failures (429, 5xx, timeouts), counting the first."""

    # --- panel serve ---------------------------------------------------------------------------
    signing_key: SecretStr | None = None
    """The key that signs the voter cookies of `panel serve` (at least 32 characters; the same
    on every machine that serves one site). None: a key generated once and kept in the user's
    data folder with mode 0600 (see panel.serve.keys)."""
    submit_token: SecretStr | None = None
    """The Bearer token that POST /api/cards asks for (at least 16 characters); None: card
    submission is off."""
    vote_rate: Annotated[int, Field(ge=1, le=1_000_000)] = 60
    """Votes a minute one client address may cast (an IPv6 address counts by its /64), through
    the store's shared limiter: every process and machine of one site spends from one budget."""
    trusted_proxy: Annotated[list[str], BeforeValidator(_words)] = []
    """Addresses or networks (CIDR) of the reverse proxies in front of `panel serve`: only a
    request from one of them has its client address and scheme read from X-Forwarded-For and
    X-Forwarded-Proto. Empty: the forwarding headers are ignored."""
    allowed_hosts: Annotated[list[str], BeforeValidator(_words)] = []
    """Host names `panel serve` answers to (a name, or *.example.com for its subdomains); a
    request naming another Host is refused with 400 and changes nothing. Empty: the loopback
    names only (localhost, 127.0.0.1, ::1), and then the server must listen on loopback."""
    voter_min_age: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 2.0
    """Seconds a voter cookie must have been held (since the page that set it) before its
    votes count: a script minting cookies by the thousand must also wait."""
    network_votes: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    """Votes one client network (an IPv4 address, an IPv6 /64) may add to one tool in 24 h."""
    wide_network_votes: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    """Votes one IPv6 /48 (a site's whole allocation) may add to one tool in 24 h."""
    card_rate: Annotated[int, Field(ge=1, le=1_000_000)] = 60
    """Cards an hour POST /api/cards takes with the submit token (an hour's worth at once)."""
    card_address_rate: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    """Cards an hour POST /api/cards takes from one client address (or IPv6 /64)."""
    card_queue: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    """Tools at most waiting for their reviews in the queue; past it, a card is refused (429)."""
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16 * 1024
    """The most bytes a request's line and headers may take (h11's incomplete-event cap)."""
    max_headers: Annotated[int, Field(ge=8, le=1000)] = 64
    """The most header fields a request may carry."""
    header_seconds: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 10.0
    """Seconds a connection has to send a whole request line and headers (from its opening, or
    from the end of the previous answer); then it is closed."""
    keep_alive_seconds: Annotated[int, Field(ge=1, le=600)] = 5
    """Seconds an idle keep-alive connection is kept open after an answer."""
    max_connections: Annotated[int, Field(ge=4, le=1_000_000)] = 1000
    """Open connections one server process holds at most; past it, a new one is answered 503
    and closed (keep it well under the process's file limit, `ulimit -n`)."""
    max_client_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    """Open connections one client address may hold in one process (a trusted proxy: no cap)."""

    _base_url_from_file: bool = PrivateAttr(default=False)
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    """Where each setting given came from: "flag", "env" or "config"."""

    def named_as(self, name: str) -> str:
        """Return how the user gave a setting, to name it in an error: "--max-cost",
        "PANEL_MAX_COST" or "max_cost in the config file" (a flag when not known)."""
        return SOURCES[self.origin(name)].format(
            flag=name.replace("_", "-"), env=name.upper(), key=name
        )

    def origin(self, name: str) -> str:
        """Return where a setting given came from: "flag", "env" or "config" (settings made in
        code count as flags)."""
        return self._sources.get(name, "flag")

    @field_validator("signing_key", "submit_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        """Strip surrounding white space (a header is read stripped, so must the setting be),
        then ask for enough characters."""
        least = {"signing_key": 32, "submit_token": 16}[info.field_name or ""]
        if value is None:
            return None
        stripped = value.get_secret_value().strip()
        if len(stripped) < least:
            raise ValueError(f"must be at least {least} characters (a random string)")
        return SecretStr(stripped)

    @field_validator("trusted_proxy")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        import ipaddress
        import re

        name = re.compile(
            r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
        )
        found = []
        for item in value:
            host = item.strip().lower()
            bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            try:
                found.append(str(ipaddress.ip_address(bare)))
                continue
            except ValueError:
                pass
            if not name.fullmatch(host):
                raise ValueError(
                    f"{item!r} is not a host name (e.g. verdicts.example.com, *.example.com; "
                    "no scheme, port or path)"
                )
            found.append(host)
        return found

    def key_goes_to(self, env: str, base_url: str | None) -> bool:
        """Return whether $<env>_API_KEY may be sent to base_url: the provider's own endpoint,
        or a base URL the user gave by flag or environment variable, never one that came
        from a config file (a file can be a stranger's)."""
        from urllib.parse import urlsplit

        if base_url is None or not self._base_url_from_file:
            return True
        return urlsplit(base_url).hostname == OFFICIAL_HOSTS.get(env)

    def personas_dir(self) -> Path:
        return self.personas or data_dir("personas")

    def prompts_dir(self) -> Path:
        return self.prompts or data_dir("prompts")


def data_dir(kind: str) -> Path:
    """Return the default folder of `kind` ("personas" or "prompts").

    An installed wheel carries them in panel/_data/; a source checkout (and an editable
    install) has them at the top of the repository.
    """
    for candidate in (PACKAGE_DIR / "_data" / kind, PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"default {kind} folder not found; pass --{kind} DIR")


def config_path() -> Path | None:
    """Return the config file to read: the one named by PANEL_CONFIG (`--config`), which must
    exist, else the user's own config.toml if there is one, else None."""
    named = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.exists():
            raise ConfigError("config file not found (--config / PANEL_CONFIG)", path=str(path))
        return path
    import platformdirs

    path = platformdirs.user_config_path("panel") / CONFIG_NAME
    return path if path.is_file() else None


def user_config_path() -> Path:
    """Return the config file a command that sets a setting writes: the one named by
    PANEL_CONFIG (`--config`), else the user's own config.toml (made if need be)."""
    named = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if named:
        return Path(named).expanduser()
    import platformdirs

    return platformdirs.user_config_path("panel") / CONFIG_NAME


def write_setting(name: str, value: str) -> Path:
    """Set one setting to a text value in the config file, keeping every other line (and
    comments) as they are; return the file. The key goes under [panel] when the file has that
    table, else at the top."""
    import json
    import re

    from panel.files import write_atomic

    path = user_config_path()
    text = (
        read_capped(path, MAX_CONFIG_BYTES, "config file").decode("utf-8") if path.exists() else ""
    )
    line = f"{name} = {json.dumps(value)}"  # a JSON string is a TOML basic string
    existing = re.compile(rf"^[ \t]*{re.escape(name)}[ \t]*=.*$", re.M)
    if existing.search(text):
        text = existing.sub(lambda _: line, text, count=1)
    elif re.search(r"^[ \t]*\[panel\][ \t]*$", text, re.M):
        text = re.sub(
            r"^([ \t]*\[panel\][ \t]*)$", lambda m: f"{m[1]}\n{line}", text, count=1, flags=re.M
        )
    else:
        text = f"{line}\n{text}"
    try:
        written = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot set {name} in the config file: {exc}", path=str(path)) from None
    if written.get("panel", written).get(name) != value:
        raise ConfigError(f"cannot set {name} in the config file: edit it by hand", path=str(path))
    write_atomic(path, text)
    return path


def _config_file_values() -> dict[str, Any]:
    path = config_path()
    if path is None:
        return {}
    try:
        data = tomllib.loads(read_capped(path, MAX_CONFIG_BYTES, "config file").decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=str(path)) from None
    except InputError as exc:
        raise ConfigError(f"cannot read config: {exc.message}", path=str(path)) from None
    values = data.get("panel", data)
    if not isinstance(values, dict):
        raise ConfigError("[panel] must be a table", path=str(path))
    return {k.replace("-", "_"): v for k, v in values.items()}


def _env_values() -> dict[str, Any]:
    values = {}
    for name in Settings.model_fields:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env not in (None, ""):
            values[name] = env
    return values


def load_settings(**flags: Any) -> Settings:
    """Return settings from flags (None means "not given"), environment and config file."""
    values = _config_file_values()
    env, given = _env_values(), {k: v for k, v in flags.items() if v is not None}
    from_file = "base_url" in values and "base_url" not in env and "base_url" not in given
    sources = {k: "config" for k in values} | {k: "env" for k in env} | {k: "flag" for k in given}
    values.update(env)
    values.update(given)
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        field, problem = validation_problem(exc)
        got = "" if field in SECRET_SETTINGS else f" (got {exc.errors()[0].get('input')!r})"
        raise ConfigError(f"setting '{field}': {problem}{got}") from None
    settings._base_url_from_file = from_file
    settings._sources = sources
    add_secret_url(settings.base_url)
    for secret in (settings.signing_key, settings.submit_token):
        if secret is not None:
            add_secret(secret.get_secret_value())
    return settings
