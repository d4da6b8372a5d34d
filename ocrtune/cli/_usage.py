"""Command-line usage errors (bad option value, missing or unknown option, bad argument) as one
line, like every other bad input, instead of Typer's multi-line boxed usage message.

Typer's vendored Click raises them while it parses (``make_context``) and when it picks a
sub-command (``invoke``); the root group's error boundary (``ocrtune.cli.app``) runs both inside
``usage_errors()``.
"""

from __future__ import annotations

import importlib
import re
from contextlib import contextmanager
from typing import Any, Iterator

import typer

from ocrtune.cli._output import error

# Typer re-exports only BadParameter of Click's exceptions; the others live in the same module
# (``typer._click.exceptions`` in a Typer that vendors Click, ``click.exceptions`` before that),
# so they are taken from BadParameter's own module rather than by importing either by name.
_exceptions = importlib.import_module(typer.BadParameter.__module__)
ClickException: type[Exception] = _exceptions.ClickException
UsageError: type[Exception] = _exceptions.UsageError
MissingParameter: type[Exception] = _exceptions.MissingParameter
NoSuchOption: type[Exception] = _exceptions.NoSuchOption
BadOptionUsage: type[Exception] = _exceptions.BadOptionUsage
# a UsageError that carries a help page (`ocrtune presets` alone), shown as Typer shows it;
# older Clicks print that page themselves and have no such class
NoArgsIsHelpError: type[Exception] = getattr(_exceptions, "NoArgsIsHelpError", type("_Never", (Exception,), {}))

EXIT_BAD_INPUT = 2
_DID_YOU_MEAN = re.compile(r"\. Did you mean (.+)\?$")
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


@contextmanager
def usage_errors() -> Iterator[None]:
    """Print a usage error as one line and exit 2 (other Click errors: their own code)."""
    try:
        yield
    except NoArgsIsHelpError:
        raise  # `ocrtune presets` alone: its help page, as Typer shows it
    except ClickException as e:
        error(usage_line(e))
        raise typer.Exit(EXIT_BAD_INPUT if isinstance(e, UsageError) else e.exit_code) from None


def usage_line(e: Any) -> str:
    """``--epochs: must be >= 1 (got 0)``, ``--bogus: no such option (did you mean --epochs?)``,
    ``ocrtune train: got unexpected extra argument (x)``."""
    param = getattr(e, "param", None)
    if isinstance(e, MissingParameter):
        kind = e.param_type or (param.param_type_name if param is not None else "value")
        name = _param_name(param) if param is not None else _hint(e)
        what = f"required {kind} not given" + _usage(e)
        return f"{name}: {what}" if name else what
    if isinstance(e, typer.BadParameter):
        name = _param_name(param) if param is not None else _hint(e)
        msg = _value_message(e)
        return f"{name}: {msg}" if name else msg
    if isinstance(e, NoSuchOption):
        hint = ""
        if e.possibilities:
            hint = " (did you mean " + " or ".join(sorted(e.possibilities)) + "?)"
        return f"{e.option_name}: no such option{hint}"
    msg = " ".join(e.format_message().split())
    if isinstance(e, BadOptionUsage):  # "Option '--set' requires an argument."
        return f"{e.option_name}: " + _lower_first(re.sub(r"^Option '[^']*' ", "", msg).rstrip("."))
    msg = _DID_YOU_MEAN.sub(r" (did you mean \1?)", msg)  # "No such command 'x'. Did you mean 'y'?"
    where = getattr(getattr(e, "ctx", None), "command_path", None)
    named = re.match(r"No such command '([^']*)'", msg)
    if where is not None and named:
        where, msg = f"{where} {named[1]}", msg[named.end():].lstrip(". ")
        msg = "no such command" + (f" {msg}" if msg else "")
    msg = _lower_first(msg.rstrip("."))
    return msg if where is None else f"{where}: {msg}"


def _value_message(e: Any) -> str:
    """The value rule that failed, in the presets' words (``must be >= 1 (got 0)``) where the
    pydantic error under Typer's message says which rule and value; else Typer's message."""
    errors = _pydantic_errors(e.__cause__)
    if errors:
        err = errors[0]
        got = err.get("input")
        shown = f" (got {got})" if isinstance(got, (str, int, float)) else ""
        for name, op in _BOUNDS.items():
            if err.get("type") == name:
                bound = next(iter((err.get("ctx") or {}).values()), None)
                return f"must be {op} {bound}{shown}"
        return _lower_first(str(err.get("msg", e.message)).rstrip(".")) + shown
    return _lower_first(" ".join(str(e.message).split()).rstrip("."))


def _pydantic_errors(cause: Any) -> list[dict[str, Any]]:
    try:
        return list(cause.errors()) if cause is not None and hasattr(cause, "errors") else []
    except Exception:  # noqa: BLE001 - only a better wording is at stake
        return []


def _param_name(param: Any) -> str:
    """``--epochs`` for an option (its long name), ``GT`` for an argument."""
    opts = list(getattr(param, "opts", None) or [])
    if getattr(param, "param_type_name", "") == "option" and opts:
        return next((o for o in opts if o.startswith("--")), opts[0])
    return str(getattr(param, "display_name_raw", None) or getattr(param, "name", "") or "").upper()


def _hint(e: Any) -> str:
    hint = getattr(e, "param_hint", None)
    if hint is None:
        return ""
    return hint if isinstance(hint, str) else " / ".join(str(h) for h in hint)


def _usage(e: Any) -> str:
    """`` (ocrtune evaluate-json GT PRED)`` for a missing argument: where it goes."""
    ctx = getattr(e, "ctx", None)
    if ctx is None or getattr(getattr(e, "param", None), "param_type_name", "") != "argument":
        return ""
    args = [_param_name(p) for p in getattr(ctx.command, "params", []) if p.param_type_name == "argument"]
    return f" ({' '.join([ctx.command_path, *args])})"


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s
