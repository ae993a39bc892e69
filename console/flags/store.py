"""The flag store: Brahma's flag operations over a flag document in a backend.

Every change is a function applied to the latest version of the document: read it, apply
the change, write it back only over the version read (compare-and-swap). When another
operator or process wrote in between, the change is applied again to what they wrote, or
refused if it no longer applies (the flag was deleted, say). No update is ever lost.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from numbers import Integral

from console.flags.backends import FlagBackend
from console.flags.document import FlagDocument
from console.flags.errors import FlagError, ReadOnlyFlagError, VersionConflict
from console.flags.model import DEFAULT_VARIANTS, Flag, FlagChange, definition_for

DEFAULT_MAX_ATTEMPTS = 100
_BACKOFF_STEP_S = 0.001

Edit = Callable[[FlagDocument], list[tuple[Flag | None, Flag]]]
"""Given the latest document, the flags to write: (before or None when new, after)."""


@dataclass(frozen=True)
class ChangeResult:
    """What one operation did: the journal records of the flags it changed (none when all was already so)."""

    changes: tuple[FlagChange, ...]
    conflicts: int = 0
    """How many times another writer got in first and the change was applied again on their version."""

    @property
    def note(self) -> str:
        """Says when the change was re-applied after a conflict; empty otherwise."""
        if not self.conflicts:
            return ""
        times = "" if self.conflicts == 1 else f" ({self.conflicts} times)"
        return f"re-applied after a conflict{times}"


class FlagStore:
    """Flags of one flagd document: list them, and change them with a journal record for each change."""

    def __init__(self, backend: FlagBackend, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS):
        self.backend = backend
        self._max_attempts = max_attempts

    def list(self) -> tuple[Flag, ...]:
        """Every flag, in document order."""
        return tuple(self._document().flags)

    def get(self, name: str) -> Flag:
        return self._document().flag(name)

    def enable(self, name: str, *, actor: str, reason: str = "") -> ChangeResult:
        return self._change([name], lambda flag: replace(flag, enabled=True), actor, reason)

    def disable(self, name: str, *, actor: str, reason: str = "") -> ChangeResult:
        return self.kill([name], actor=actor, reason=reason)

    def kill(self, names: Iterable[str], *, actor: str, reason: str = "") -> ChangeResult:
        """Disable every named flag in one write: all of them or, if any is unknown or read-only, none."""
        return self._change(list(names), lambda flag: replace(flag, enabled=False), actor, reason)

    def set_percentage(self, name: str, percentage: int, *, actor: str, reason: str = "") -> ChangeResult:
        if isinstance(percentage, bool) or not isinstance(percentage, Integral) or not 0 <= percentage <= 100:
            raise FlagError(f"rollout percentage must be a whole number from 0 to 100, not {percentage!r}")
        return self._change([name], lambda flag: replace(flag, percentage=int(percentage)), actor, reason)

    def allow(self, name: str, user: str, *, actor: str, reason: str = "") -> ChangeResult:
        """Always give `user` (a targeting key) "on" while the flag is enabled."""
        _check_user(user)

        def add_user(flag: Flag) -> Flag:
            if user in flag.allowed_users:
                return flag
            return replace(flag, allowed_users=(*flag.allowed_users, user))

        return self._change([name], add_user, actor, reason)

    def disallow(self, name: str, user: str, *, actor: str, reason: str = "") -> ChangeResult:
        _check_user(user)

        def remove_user(flag: Flag) -> Flag:
            return replace(flag, allowed_users=tuple(allowed for allowed in flag.allowed_users if allowed != user))

        return self._change([name], remove_user, actor, reason)

    def create(self, name: str, *, actor: str, reason: str = "", new: bool = True) -> ChangeResult:
        """Add the flag disabled, at 0% and with no allowed users, unless it exists (then nothing changes).

        `new` marks it as created for this release, so the kill switch turns it off.
        """
        if not isinstance(name, str) or not name.strip():
            raise FlagError(f"a flag name must be a non-empty string, not {name!r}")
        created = Flag(name, enabled=False, percentage=0, variants=dict(DEFAULT_VARIANTS), new=new)
        return self._update(lambda document: [] if name in document.definitions else [(None, created)], actor, reason)

    def _document(self) -> FlagDocument:
        return FlagDocument(self.backend.read().text, self.backend.source)

    def _change(self, names: list[str], transform: Callable[[Flag], Flag], actor: str, reason: str) -> ChangeResult:
        """Apply `transform` to each named flag Brahma may change; refuse all if any is unknown or read-only."""

        def edit(document: FlagDocument) -> list[tuple[Flag | None, Flag]]:
            flags = [document.flag(name) for name in dict.fromkeys(names)]
            read_only = [flag.name for flag in flags if flag.read_only]
            if read_only:
                raise ReadOnlyFlagError(f"{', '.join(read_only)}: targeting not written by Brahma; change it where it was written")
            return [(flag, changed) for flag in flags if (changed := transform(flag)) != flag]

        return self._update(edit, actor, reason)

    def _update(self, edit: Edit, actor: str, reason: str) -> ChangeResult:
        for attempt in range(self._max_attempts):
            snapshot = self.backend.read()
            document = FlagDocument(snapshot.text, self.backend.source)
            edits = edit(document)
            if not edits:
                return ChangeResult((), attempt)
            definitions = {new.name: definition_for(new, document.definitions.get(new.name)) for _, new in edits}
            try:
                self.backend.write(document.edited(definitions), snapshot)
            except VersionConflict:
                # Jitter so two writers that collided do not collide again in lockstep.
                time.sleep(random.uniform(0, _BACKOFF_STEP_S * (attempt + 1)))
                continue
            changes = tuple(FlagChange(new.name, old.to_dict() if old else None, new.to_dict(), actor, reason) for old, new in edits)
            return ChangeResult(changes, attempt)
        raise VersionConflict(f"{self.backend.source} kept changing: gave up after {self._max_attempts} attempts")


def _check_user(user: str) -> None:
    if not isinstance(user, str) or not user.strip():
        raise FlagError(f"a user must be a non-empty targeting key, not {user!r}")
