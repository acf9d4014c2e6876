"""The `panel` command line: app.py assembles it, options.py and output.py serve every command
group (review.py, compare.py, queue.py, golden.py)."""

from panel.cli.app import app

__all__ = ["app"]
