"""The `panel` command line: app.py assembles it and holds the one error boundary; one module
per command or group (review, compare, eval, personas, log, import_, vote, serve, site, queue,
golden) parses flags and prints; options.py declares the shared options once, output.py prints."""

from panel.cli.app import app

__all__ = ["app"]
