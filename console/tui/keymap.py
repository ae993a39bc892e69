"""Key overrides from a config file: binding id → keys. The rollback key must keep a modifier."""

from __future__ import annotations

import os
from pathlib import Path

ROLLBACK_BINDING = "rollout.rollback"
MODIFIERS = ("ctrl+", "alt+", "super+", "meta+")


class KeymapError(Exception):
    """A keymap file that cannot be used: names the file and what is wrong."""


def default_keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "brahma" / "keymap.yaml"


def load_keymap(path: Path, known_ids: set[str]) -> dict[str, str]:
    """`{binding id: "key[,key]"}` from a YAML file; an empty map when there is no file."""
    if not path.exists():
        return {}
    import yaml  # only for a keymap there is: the console's first frame waits for what it imports

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise KeymapError(f"{path}: cannot read the keymap: {error}") from None
    if not isinstance(data, dict):
        raise KeymapError(f"{path}: a keymap is a mapping of binding id to keys")
    keymap = {}
    for binding_id, keys in data.items():
        if binding_id not in known_ids:
            raise KeymapError(f"{path}: {binding_id}: no such binding (known: {', '.join(sorted(known_ids))})")
        if not isinstance(keys, str) or not keys.strip():
            raise KeymapError(f'{path}: {binding_id}: keys are a string like "ctrl+b" or "ctrl+b,f12"')
        if binding_id == ROLLBACK_BINDING and not all(k.strip().startswith(MODIFIERS) for k in keys.split(",")):
            raise KeymapError(f"{path}: {binding_id}: the rollback key needs a modifier (ctrl+, alt+) so it is never pressed by accident")
        keymap[binding_id] = keys
    return keymap
