"""A release's flags in a flag store: created disabled before the deploy, switched off by a rollback
or by the kill switch. Store calls are blocking file or API I/O, so they run in a thread."""

from __future__ import annotations

import asyncio

from console.flags.model import Flag, FlagChange
from console.flags.store import FlagStore
from console.plan.model import FlagSpec, FlagStep


class ReleaseFlags:
    def __init__(self, store: FlagStore, specs: tuple[FlagSpec, ...]):
        self.store, self.specs = store, specs

    def flags(self) -> tuple[Flag, ...]:
        return self.store.list()

    async def create_missing(self, actor: str, reason: str) -> list[FlagChange]:
        """The plan's flags that the store lacks, added disabled (deploy dark)."""
        changes: list[FlagChange] = []
        for spec in self.specs:
            result = await asyncio.to_thread(self.store.create, spec.name, actor=actor, reason=reason, new=spec.new)
            changes += result.changes
        return changes

    async def _disable(self, names: list[str], actor: str, reason: str) -> list[FlagChange]:
        if not names:
            return []
        result = await asyncio.to_thread(self.store.kill, names, actor=actor, reason=reason)
        return list(result.changes)

    async def on_rollback(self, actor: str, reason: str) -> list[FlagChange]:
        """Every flag the plan marks disable_on_rollback, off in one write."""
        return await self._disable([s.name for s in self.specs if s.disable_on_rollback], actor, reason)

    async def apply_step(self, step: FlagStep, actor: str) -> list[FlagChange]:
        """An enablement step: its users allowed, its share set, the flag on (each a no-op when already so)."""

        def apply() -> list[FlagChange]:
            reason = f"enablement step {step.percentage}%" + (f" + {len(step.users)} internal users" if step.users else "")
            results = [self.store.allow(step.flag, user, actor=actor, reason=reason) for user in step.users]
            results.append(self.store.set_percentage(step.flag, step.percentage, actor=actor, reason=reason))
            results.append(self.store.enable(step.flag, actor=actor, reason=reason))
            return [change for result in results for change in result.changes]

        return await asyncio.to_thread(apply)

    async def kill(self, actor: str) -> list[FlagChange]:
        """The kill switch: every flag the plan marks as new, off in one write."""
        return await self._disable([s.name for s in self.specs if s.new], actor, "kill switch")
