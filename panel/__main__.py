"""`python -m panel` runs the command line."""

from panel.cli import app

app(prog_name="panel")
