"""Write the command reference, docs/cli.md, from the app itself (`make docs`)."""

from __future__ import annotations

import sys
from pathlib import Path

from panel.cli.app import app
from panel.cli.reference import reference_markdown


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/cli.md")
    target.write_text(reference_markdown(app), encoding="utf-8")  # as is: help text holds no secret
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
