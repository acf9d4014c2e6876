"""Convert a seed comparison page (plain text, as in ../shared/seeds/) into `panel import` records.

Only pages whose scorecard carries "NN/100 · verdict" lines can be converted (seed 000 does).
Usage: python scripts/seed_to_jsonl.py ../shared/seeds/000_*.txt > examples/seeds/000.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from panel.cards import slugify

PERSONAS = ["Builder", "Skeptic", "Futurist", "Founder"]


def convert(text: str) -> list[dict[str, object]]:
    lines = [line.strip() for line in text.splitlines()]
    title = next(line for line in lines if " vs " in line and not line.startswith("Compare/"))
    names = title.split(" vs ")
    tools = []
    for name in names:
        i = lines.index(name, lines.index(title) + 1)
        tagline = lines[i + 2]
        entry = lines[i + 12]
        description = lines[i + 16]
        tools.append(
            {
                "type": "tool",
                "slug": slugify(name),
                "name": name,
                "tagline": tagline,
                "description": description,
                "category": lines[i - 2],
                "entry": entry,
            }
        )
    decision = lines.index("Decision")
    pricing = lines.index("Pricing", decision)
    tools[0]["pricing"], tools[1]["pricing"] = lines[pricing + 1], lines[pricing + 2]
    records: list[dict[str, object]] = list(tools)
    start = lines.index("Reviewer scorecard")
    body = [line for line in lines[start + 1 :] if line]
    side = 0
    persona = None
    for j, line in enumerate(body):
        if line in PERSONAS:
            persona, side = line.lower(), 0
            continue
        match = re.fullmatch(r"(\d+)/100 · (ship|skip)", line)
        if match and persona:
            records.append(
                {
                    "type": "review",
                    "tool": tools[side]["slug"],
                    "persona": persona,
                    "score": int(match[1]),
                    "verdict": match[2],
                    "review": body[j + 1],
                }
            )
            side += 1
        if line == "Weekly AI Tool Verdicts":
            break
    return records


if __name__ == "__main__":
    for record in convert(Path(sys.argv[1]).read_text(encoding="utf-8")):
        print(json.dumps(record, ensure_ascii=False))
