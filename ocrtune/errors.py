"""Error types shared by every layer.

The CLI maps ``InputError`` to exit code 2 and any other ``OcrtuneError`` to exit code 1,
printing one located line per problem and never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


class OcrtuneError(Exception):
    """A failure the user can act on (a run failed, a resource is missing)."""


@dataclass(frozen=True)
class Problem:
    """One located problem: ``file:line:col key: message``."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    key: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
        parts = [p for p in (where, self.key) if p]
        head = " ".join(parts)
        return f"{head}: {self.message}" if head else self.message


class InputError(OcrtuneError):
    """Bad input (file, preset, option). Carries one or more located problems."""

    def __init__(
        self,
        message: str | None = None,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
        problems: Iterable[Problem] | None = None,
    ) -> None:
        probs = list(problems or [])
        if message is not None:
            probs.insert(
                0,
                Problem(
                    message,
                    str(file) if file is not None else None,
                    line,
                    column,
                    key,
                ),
            )
        if not probs:
            raise ValueError("InputError needs a message or problems")
        self.problems: list[Problem] = probs
        super().__init__("\n".join(str(p) for p in probs))

    @property
    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]
