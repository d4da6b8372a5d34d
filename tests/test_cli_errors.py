"""The CLI's one error boundary: our errors and file-system errors become one line and an exit code."""

from __future__ import annotations

import errno

import pytest
import typer
from typer.testing import CliRunner

from ocrtune.cli.app import _ErrorBoundary
from ocrtune.errors import InputError, OcrtuneError


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer(cls=_ErrorBoundary)

    @app.command("go")
    def go() -> None:
        raise exc

    @app.command("other")
    def other() -> None:  # two commands keep "go" a sub-command, as in the real app
        pass

    return app


@pytest.mark.parametrize(
    "exc, code, line",
    [
        (InputError("unknown key", file="p.yaml", line=3, column=5, key="lrr"), 2, "p.yaml:3:5 lrr: unknown key"),
        (OcrtuneError("the run failed"), 1, "error: the run failed"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope/x.json"), 2,
         "/nope/x.json: No such file or directory"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "afile/images"), 2, "afile/images: Not a directory"),
        (OSError(errno.ENOSPC, "No space left on device", "runs/x/last.ckpt"), 1,
         "runs/x/last.ckpt: No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied", "a.tmp", None, "a.yaml"), 2, "a.tmp, a.yaml: Permission denied"),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), 1, "Broken pipe"),  # not our stdout: said
    ],
)
def test_errors_are_one_line_with_an_exit_code(exc, code, line):
    result = CliRunner().invoke(_app_raising(exc), ["go"])
    assert result.exit_code == code
    out = result.output.strip()
    assert out == line
    assert "Traceback" not in result.output


def test_a_reader_that_closes_our_stdout_ends_the_command_quietly():
    """`ocrtune presets show baseline | head -c 1`: exit 0, nothing on stderr, no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    main = "import sys; from ocrtune.cli.app import main; sys.argv[0] = 'ocrtune'; main()"
    proc = subprocess.Popen([sys.executable, "-c", main, "presets", "show", "baseline"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0 and err == ""


def test_python_dash_m_ocrtune_runs_the_cli_through_the_same_boundary(tmp_path):
    """``python -m ocrtune`` is the CLI where no script is installed (the GPU machine runs a
    checkout on PYTHONPATH): the same commands, the same one-line errors."""
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "ocrtune", "presets", "list"], capture_output=True, text=True)
    assert ok.returncode == 0 and "baseline" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "ocrtune", "presets", "show", "no-such-preset"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "no-such-preset" in bad.stderr
