"""Root command: mounts the sub-commands and holds the one error boundary."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from ocrtune import __version__
from ocrtune.cli import compare, data, evaluate_json, presets, runs, sweep, train
from ocrtune.cli._output import error
from ocrtune.cli.tune_postprocess import tune_postprocess
from ocrtune.cli._usage import usage_errors
from ocrtune.cli.kfold import app as kfold_app
from ocrtune.errors import InputError, OcrtuneError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


class _ErrorBoundary(TyperGroup):
    """Turns our errors into located one-line messages and exit codes, never tracebacks."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with usage_errors():  # the root's own options (`ocrtune --bogus`)
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        try:
            with usage_errors():  # a sub-command's options and arguments, an unknown command
                return super().invoke(ctx)
        except InputError as e:
            for line in e.lines:
                error(line)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OcrtuneError as e:
            error(f"error: {e}")
            raise typer.Exit(EXIT_FAILED) from None
        except OSError as e:  # a path the user named that cannot be read or written, a full disk
            if isinstance(e, BrokenPipeError) and _stdout_closed():
                _quiet_stdout()  # `ocrtune ... | head`: the reader has what it wanted
                raise typer.Exit(0) from None
            where = ", ".join(str(f) for f in (e.filename, e.filename2) if f)
            error(f"{where}: {e.strerror or e}" if where else str(e.strerror or e))
            raise typer.Exit(EXIT_BAD_INPUT if isinstance(e, _PATH_ERRORS) else EXIT_FAILED) from None


def _stdout_closed() -> bool:
    """Whether our own stdout's reader went away (rather than some other pipe breaking): the
    write end of a pipe nobody reads polls as an error."""
    import select
    import sys

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real stdout (a test runner's buffer), no poll
        return False


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os
    import sys

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's buffer)
        pass


app = typer.Typer(
    cls=_ErrorBoundary,
    help="Train and tune DBNet text detectors for scanned receipts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(presets.app, name="presets")
app.add_typer(runs.app, name="runs")
app.add_typer(data.app, name="data")
app.add_typer(sweep.app, name="sweep")
app.add_typer(kfold_app, name="kfold")
app.command("compare")(compare.compare)
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.command("predict")(train.predict)
app.command("evaluate-json")(evaluate_json.evaluate_json)
app.command("tune-postprocess")(tune_postprocess)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ocrtune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Train and tune DBNet text detectors for scanned receipts."""


def main() -> None:
    app()
