"""Help and usage errors (issue 12 item 17): no <bool> on flags, global options hinted, no empty progress bar."""

from __future__ import annotations

from custscore.cli.usage import global_hint
from tests.cli.test_cli_foundation import assert_one_red_line, cli


def test_help_shows_no_bool_placeholder_on_flags(tmp_path):
    for command in (["query", "--help"], ["ingest", "--help"], ["leaderboard", "--help"], ["--help"]):
        result = cli(tmp_path, *command)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, command
    assert "<int>" in cli(tmp_path, "query", "--help").output  # options that take a value keep their type


def test_a_global_option_after_the_command_gets_a_hint(tmp_path):
    result = cli(tmp_path, "status", "--verbos")
    assert result.exit_code == 2
    flat = " ".join(result.output.replace("│", " ").split())
    assert ("No such option: --verbos. -v/--verbose is a global option: put it before the command, "
            "e.g. custscore -v status") in flat
    assert global_hint("--home") == "--home is a global option: put it before the command, e.g. custscore --home ... COMMAND"
    assert global_hint("--limit") is None


def test_ingest_of_a_missing_file_is_one_red_line_without_a_progress_bar(tmp_path):
    result = cli(tmp_path, "ingest", "events", str(tmp_path / "nope.csv"))
    assert_one_red_line(result, "does not exist")
    assert "ingesting" not in result.output and "0/?" not in result.output
