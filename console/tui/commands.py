"""Command palette entries: "rollout: promote", "rollout: roll back", ... each one an action of the rollout's console."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

ENTRIES = (
    ("rollout: roll back", "rollback", "Traffic back to stable now (asks first)"),
    ("rollout: promote", "promote", "The next stage now"),
    ("rollout: promote to 100%", "promote_full", "Straight to the last stage"),
    ("rollout: pause", "pause", "Hold the rollout where it is"),
    ("rollout: resume", "resume", "Go on: the stage's window starts again"),
    ("pre-flight: sign off", "sign_off", "Sign off the highlighted manual item"),
    ("flags: kill switch", "kill_flags", "Switch off every flag the plan marks as new (asks first)"),
    ("console: keys", "keys", "Every key and what it does"),
)


class RolloutCommands(Provider):
    """The captain's actions by name; each runs the same action as its key (and its checks)."""

    def _entries(self):
        console = self.screen  # the rollout's console the palette was opened on
        for name, action, help_text in ENTRIES:
            if console.check_action(action, ()) is not False:
                yield name, partial(console.run_action, action), help_text

    async def discover(self) -> Hits:
        for name, callback, help_text in self._entries():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._entries():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
