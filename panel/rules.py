"""The panel's rules in numbers: the verdict rule and the length limits every answer obeys.

One place for them, so personas (validation), prompts (what the model is told), the local
grammar (what the model can write) and the pages (the ship line) agree.
"""

from __future__ import annotations

SHIP_THRESHOLD = 60
"""The verdict rule: a score of 60 or more is a ship, below 60 a skip (seeds: 52, 55 skip; 72+ ship)."""

REVIEW_MIN_CHARS = 40
REVIEW_MAX_CHARS = 4000
FIELD_MAX_CHARS = 600
PAIR_REASON_MIN_CHARS = 12
"""A pair answer's reason: a short sentence at the least ("Ships on device today.")."""
PAIR_REASON_MAX_CHARS = 2200
"""A pair's reason compares the two cards on the persona's questions before it picks."""
LIST_ITEM_MAX_CHARS = 120


def verdict_for(score: float, threshold: int = SHIP_THRESHOLD) -> str:
    """Return the verdict the rule gives a score: "ship" at or above the threshold, else "skip"."""
    return "ship" if score >= threshold else "skip"


PROBE_FLAG_POINTS = 5.0
"""`panel eval` flags a probe that moves the mean score this many points or more, either way..."""
PROBE_FLAG_FLIPS = 0.10
"""...or flips this share of verdicts or more."""

SAMPLES_TEMPERATURE = 0.7
"""The temperature of a review asked several times (--samples N > 1) unless the user sets one:
samples that never vary say nothing of a judge's noise. One sample runs at 0."""

# --- what panel believes of a model server (an untrusted party) -------------------------------

MAX_RETRY_AFTER = 60.0
"""The longest pause a Retry-After may impose, in seconds: a longer one is cut to this, a
negative or non-finite one is ignored (a server must not stop panel for years)."""

MAX_REPORTED_TOKENS = 10_000_000
"""The most tokens a call may report for any of its counts (input, cached, output): far above
any model's context; a larger count is a malformed answer, not a bill."""

# --- the demo judge ----------------------------------------------------------------------------

DEMO_MODELS = {"smollm2-135m-instruct.q4_1.gguf", "tiny"}
"""The embedded tiny model (its GGUF file and its catalogue name): a judge that shows how panel
works, too small for its verdicts to be a review. The default embedded judge
(qwen2.5-coder-1.5b-instruct-q4_k_m.gguf, "qwen2.5-coder-1.5b") is not one of them."""
DEMO_PROVIDERS = {"local", "replay"}
"""Where the tiny model judges: in-process, or replayed from its recorded answers."""

DEMO_NOTICE = (
    "A demo judge: its verdicts are not a review. These reviews were written by the tiny "
    "embedded model, which shows how panel works; run panel with a real model for verdicts."
)


def is_demo_judge(provider: str, model: str) -> bool:
    """Return whether (provider, model) is the tiny embedded demo model (DEMO_MODELS), run
    in-process or replayed."""
    return provider.casefold() in DEMO_PROVIDERS and model.casefold() in DEMO_MODELS
