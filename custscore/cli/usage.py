"""Help and usage errors that read well (issue 12 item 17).

- Flags take no value, so ``--help`` shows no ``<bool>`` beside them (typer 0.29 prints one for every bool option).
- A global option given after the command (``custscore status --verbos``) gets a hint to put it first.

Both are small patches of typer/click behaviour, applied once when the CLI package is imported.
"""

from __future__ import annotations

import difflib

from typer.core import TyperOption

try:  # typer 0.29 parses with its own copy of click; older ones with click itself
    from typer._click.exceptions import NoSuchOption
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import NoSuchOption

# The options of the app's callback (cli/common.py main): they go before the command.
GLOBAL_OPTIONS = {"--verbose": "-v/--verbose", "-v": "-v/--verbose", "--home": "--home", "--mongo-uri": "--mongo-uri",
                  "--db": "--db"}

_display_type_rich = TyperOption.display_type_rich
_format_message = NoSuchOption.format_message


def _flag_type(self: TyperOption, ctx) -> str | None:
    """No type column for flags: ``--csv`` takes no value."""
    if self.is_flag and self.metavar is None:
        return None
    return _display_type_rich(self, ctx)


def global_hint(option: str, command: str = "COMMAND") -> str | None:
    """The hint for an unknown option that is (close to) a global one, e.g. ``--verbos`` -> put ``-v`` first."""
    name = option.split("=", 1)[0]
    match = GLOBAL_OPTIONS.get(name) or next(
        (GLOBAL_OPTIONS[m] for m in difflib.get_close_matches(name, list(GLOBAL_OPTIONS), n=1, cutoff=0.75)), None)
    if match is None:
        return None
    example = "-v" if match == "-v/--verbose" else f"{match} ..."
    return f"{match} is a global option: put it before the command, e.g. custscore {example} {command}"


def _message(self: NoSuchOption) -> str:
    text = _format_message(self)
    command = getattr(self.ctx, "info_name", None) or "COMMAND"
    hint = global_hint(self.option_name, command)
    return f"{text}. {hint}" if hint else text


def install() -> None:
    """Apply both patches (idempotent)."""
    TyperOption.display_type_rich = _flag_type
    NoSuchOption.format_message = _message


install()
