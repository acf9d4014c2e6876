"""YAML and JSON text from users into Python data, or one line that says what is wrong.

Stricter than the parsers' defaults where a user would be surprised: a key given twice in one
mapping is refused (PyYAML and json keep the last one silently), NaN and Infinity are not JSON
(nor is a number too large for a float, which json would read as infinity), and nesting deep
enough to exhaust the recursion limit is a parse error, not a crash. A value YAML can name but
Python cannot build (month 13, February 30, year 0, `!!float "abc"`, an integer of thousands of
digits) is a parse error with its line. Cards, imports, queue files, persona files, prompt
configs, golden case files and model answers are all read here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml


class ParseError(ValueError):
    """The text is not valid YAML or JSON; the message is one line, with the line number."""


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that refuses a key given twice in one mapping, and turns a value Python
    cannot build into a YAML error at the value's line; libyaml's parser where PyYAML was
    built with it (several times faster than the pure-Python one: every command reads the
    persona files)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, TypeError) as exc:
            if isinstance(exc, yaml.YAMLError):
                raise
            problem = " ".join(str(exc).split(";")[0].split())[:120] or exc.__class__.__name__
            value = str(node.value)
            shown = value if len(value) <= 40 else f"{value[:40]}..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value '{shown}': {problem}", node.start_mark
            ) from None


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # an unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key '{key}'")
        data[key] = value
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def load_json(text: str) -> Any:
    """Return the data in JSON text (NaN and Infinity refused, as the standard has them), or
    raise ParseError."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ParseError("invalid JSON: nested too deeply") from None


def load_yaml(text: str) -> Any:
    """Return the data in YAML text (plain data only: no Python tags), or raise ParseError."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own limit
            raise ParseError("invalid YAML: nested too deeply") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or "cannot parse").split())
        raise ParseError(f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ParseError("invalid YAML: nested too deeply") from None
