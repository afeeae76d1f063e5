"""``python -m custscore`` runs the CLI."""

from custscore.cli import app

app(prog_name="custscore")
