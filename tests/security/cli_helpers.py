"""Running commands the way a user does, and the checks every hostile-input test makes."""

from __future__ import annotations

from typer.testing import CliRunner

from custscore.cli import app

runner = CliRunner()


def cli(home, *args, input=None, env=None):
    """Run ``custscore --home HOME ARGS``; exceptions surface as a non-zero exit with a traceback in output."""
    return runner.invoke(app, ["--home", str(home), *args], input=input,
                         env={"CUSTSCORE_MONGO_URI": "", **(env or {})}, catch_exceptions=True)


def assert_no_traceback(result) -> None:
    """The command ended on purpose: exit 0 or 1, no exception escaped."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output


def assert_one_red_line(result, *fragments) -> str:
    """Exit 1 with exactly one ``Error:`` line holding every fragment; return that line."""
    assert_no_traceback(result)
    assert result.exit_code == 1, result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
