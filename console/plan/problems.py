"""What is wrong with a plan-like file (or only worth a word), where it is and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

Path_ = tuple[str | int, ...]
"""A place in a document: keys and list indexes from its root."""


def field_name(path: Path_) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan, where it is and what to do about it."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.source}:{self.line}: {where}{self.message}"

    def as_warning(self) -> str:
        """The line `validate` and `run` print for something that runs but is likely a mistake."""
        where = f"{self.field}: " if self.field else ""
        return f"{self.source}:{self.line}: warning: {where}{self.message}"


class PlanError(Exception):
    """A plan that cannot be run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))
