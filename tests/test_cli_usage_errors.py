"""Command-line usage errors read like every other bad input: one line on stderr, exit 2, no box."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from ocrtune.cli.app import _ErrorBoundary


@pytest.mark.parametrize(
    "args, line",
    [
        # a bad option value: the rule and the value, as preset errors say them
        (["train", "--epochs", "0"], "--epochs: must be >= 1 (got 0)"),
        (["sweep", "--parallel", "-1"], "--parallel: must be >= 0 (got -1)"),
        (["presets", "blend", "baseline", "run8", "--name", "x", "--weight", "half"],
         "--weight: input should be a valid number, unable to parse string as a number (got half)"),
        # a missing option or argument
        (["presets", "blend", "baseline", "run8"], "--name: required option not given"),
        (["presets", "new", "x"], "--from: required option not given"),
        (["compare", "baseline", "run8", "--set"], "--set: requires an argument"),
        # an unknown option or command
        (["--bogus"], "--bogus: no such option"),
        (["presets", "show", "baseline", "--jsn"], "--jsn: no such option (did you mean --json or --set?)"),
        (["presets", "shw", "baseline"], "presets shw: no such command (did you mean 'show'?)"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(cli, args, line):
    code, out, err = cli(*args)
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [line] or err.strip().endswith(line)  # command path: runner's prog name
    assert len(err.strip().splitlines()) == 1
    assert "╭" not in err and "Usage:" not in err and "Traceback" not in err


def test_a_missing_argument_says_where_it_goes(cli):
    code, out, err = cli("evaluate-json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("GT: required argument not given (") and err.rstrip().endswith(" evaluate-json GT PRED)")


def test_an_extra_argument_names_the_command(cli):
    code, _, err = cli("presets", "list", "stray")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.rstrip().endswith("presets list: got unexpected extra argument(s) (stray)")


def test_help_pages_stay_as_they_are(cli):
    code, out, _ = cli("presets", "--help")
    assert code == 0 and "Usage:" in out and "validate" in out
    code, out, err = cli("presets")  # no sub-command: the group's help, as before
    assert "Usage:" in out + err and "validate" in out + err


def test_bad_parameter_raised_by_a_command_is_one_line_too():
    app = typer.Typer(cls=_ErrorBoundary)

    @app.command("go")
    def go() -> None:
        raise typer.BadParameter("must name an existing run", param_hint="--resume")

    @app.command("other")
    def other() -> None:  # two commands keep "go" a sub-command, as in the real app
        pass

    result = CliRunner().invoke(app, ["go"])
    assert result.exit_code == 2
    assert result.output.strip() == "--resume: must name an existing run"
