"""An Input that applies its keys in the order they were typed, a burst of keys included."""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    """Keys typed in one burst (`BSpace 3 0 Enter` in a single write) edit the text as typed.

    Textual runs a key's bindings where the key ends its bubbling, at the App, but inserts a
    character at once, in the Input: in a burst, the characters overtake the backspace typed
    before them (it then deletes the "0" of "30") and Enter submits before the text is complete.
    Here the Input's own bindings run as the key arrives, so every key takes its turn.
    """

    async def _on_key(self, event: events.Key) -> None:
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()  # Input's own key handler must not see it a second time
                return
