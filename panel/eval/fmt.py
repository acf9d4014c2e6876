"""How the eval's reports print their figures: the terminal report (panel.cli.eval) and the
document's headline (panel.eval.evaluate) say a number the same way. Light on purpose: the
command line imports it without the eval's statistics."""

from __future__ import annotations

from typing import Any


def num(value: float | None, digits: int = 1) -> str:
    """A number as the reports print it (— when unknown)."""
    return "—" if value is None else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    """A change as the reports print it: its sign always shown, one decimal."""
    return "—" if value is None else f"{round(value, 1) + 0.0:+.1f}"


def share(value: float | None) -> str:
    """A share as the reports print it: a whole percentage."""
    return "—" if value is None else f"{round(100 * value)}%"


def effect(row: dict[str, Any]) -> float | None:
    """Return a probe's change beyond the noise (the null probe's: its own change)."""
    beyond = row.get("beyond_noise")
    found: float | None = row["mean_delta"] if beyond is None else beyond["mean_delta"]
    return found


def reused_cost(reused: dict[str, Any]) -> str:
    """Return what the stored reviews an eval reused cost when made: "$0.0123", "unknown (no
    price for their model)", or "at least $0.0100 (3 of unknown cost)"."""
    usd, unknown, reviews = reused.get("usd"), reused.get("unknown") or 0, reused["reviews"]
    if usd is None or (unknown and unknown >= reviews):
        return "an unknown amount (no price is known for their model)"
    if unknown:
        return f"at least ${usd:.4f} ({unknown} of unknown cost)"
    return f"${usd:.4f}"
