"""The state dir: every file Brahma keeps there is named here, and nowhere else.

    STATE_DIR/
      NAME.jsonl               the rollout's journal (its live file)
      NAME.jsonl.N.gz          the journal's closed segments, N = 1, 2, ... in order, then the live file (journal.py)
      NAME.snapshot.json       the journal's state folded up to a position in it (journal/snapshot.py)
      NAME.sim.json            the simulator's state (the traffic split and images it stands in for)
      NAME.flags.json          the flag file a plan's flags are kept in on the simulator
      NAME.lock                held by the rollout's one controller
      NAME.sock                the detached controller's socket
      NAME.log                 the detached controller's output
      NAME.launch.json         how the detached controller was started, so that attach can start it again
      NAME.md                  the runbook
      NAME.STAMP.jsonl         a finished rollout's journal moved aside, with its segments (NAME.STAMP.jsonl.N.gz),
                               NAME.STAMP.sim.json and NAME.STAMP.snapshot.json
      flags.jsonl              the journal of flag changes made with no rollout (brahma flags), segmented alike
      brahma-error.log         the trace of the last internal error

NAME is a release name (console/plan/names.py keeps them fit for every file here).
"""

from __future__ import annotations

import glob
import itertools
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from console.journal.state import read_state
from console.private_files import make_state_dir


def journal_segment(journal: Path, number: int) -> Path:
    """The journal's closed segment `number` (from 1): JOURNAL.N.gz beside it."""
    return journal.with_name(f"{journal.name}.{number}.gz")


def journal_segment_numbers(journal: Path) -> list[int]:
    """The numbers of the journal's closed segments on disk, in order."""
    prefix = f"{journal.name}."
    numbers = (path.name[len(prefix) : -len(".gz")] for path in journal.parent.glob(f"{glob.escape(journal.name)}.*.gz"))
    return sorted(int(number) for number in numbers if number.isdigit() and number.isascii())


@dataclass(frozen=True)
class StateDir:
    """A state dir: the rollouts' files, the flag changes' journal and the error log."""

    path: Path

    def make(self) -> None:
        """The state dir with its parents; 0700 when this creates it."""
        make_state_dir(self.path)

    def rollout(self, name: str) -> RolloutFiles:
        return RolloutFiles(self.path, name)

    @property
    def flags_journal(self) -> Path:
        return self.path / "flags.jsonl"

    @property
    def error_log(self) -> Path:
        return self.path / "brahma-error.log"


@dataclass(frozen=True)
class RolloutFiles:
    """The files of rollout `name` in `state_dir`."""

    state_dir: Path
    name: str

    @classmethod
    def of_journal(cls, journal: Path) -> RolloutFiles:
        """The files beside a journal named on the command line (an archived one included)."""
        return cls(journal.parent, journal.stem)

    def _file(self, suffix: str) -> Path:
        return self.state_dir / f"{self.name}{suffix}"

    @property
    def journal(self) -> Path:
        return self._file(".jsonl")

    @property
    def snapshot(self) -> Path:
        """The controller's snapshot of the folded journal: readers fold only what follows it."""
        return self._file(".snapshot.json")

    @property
    def sim_state(self) -> Path:
        return self._file(".sim.json")

    @property
    def sim_flags(self) -> Path:
        """On the simulator, the plan's flags are kept here, standing in for the flag service."""
        return self._file(".flags.json")

    @property
    def lock(self) -> Path:
        return self._file(".lock")

    @property
    def socket(self) -> Path:
        return self._file(".sock")

    @property
    def log(self) -> Path:
        return self._file(".log")

    @property
    def launch(self) -> Path:
        """The `brahma supervise` arguments, so `attach` can restart a controller that died."""
        return self._file(".launch.json")

    @property
    def report(self) -> Path:
        return self._file(".md")

    def archive_finished(self) -> Path | None:
        """A finished rollout's journal (its segments, then its live file: the live file is what says a rollout
        is here) and simulator state moved aside, so the same release can run again; the archived journal, or
        None when there is no finished rollout to move."""
        if not self.journal.exists() or not read_state(self.journal).finished:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        archived = RolloutFiles(self.state_dir, f"{self.name}.{stamp}")
        for again in itertools.count(2):  # two runs finished within a second: the first one's is kept too
            if not archived.journal.exists():
                break
            archived = RolloutFiles(self.state_dir, f"{self.name}.{stamp}-{again}")
        for number in journal_segment_numbers(self.journal):
            shutil.move(journal_segment(self.journal, number), journal_segment(archived.journal, number))
        shutil.move(self.journal, archived.journal)
        for kept, moved in ((self.sim_state, archived.sim_state), (self.snapshot, archived.snapshot)):
            if kept.exists():
                shutil.move(kept, moved)
        return archived.journal
