"""Brahma's model of a feature flag, and how it maps onto a flagd flag definition.

A flag Brahma manages has the variants "on" and "off" and a targeting rule built from two
things only: the users who always get "on", and the share of everyone else who does.

    {"if": [{"in": [{"var": "targetingKey"}, ["alice", "bob"]]}, "on", REST]}

REST is "on" at 100%, "off" at 0%, and in between flagd's `fractional` in its shorthand
form, {"fractional": [["on", P], ["off", 100 - P]]}, which buckets each user by the flag
key and the targeting key, so whoever is "on" at 5% stays "on" at 25%. Without allowed
users the `if` goes and REST stands alone; a plain "on" or "off" needs no targeting at all
because defaultVariant says it. Disabling sets state DISABLED and keeps the targeting, so
enabling again restores the same rollout.

Any other targeting was written by someone else: Brahma shows such a flag read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NEW_FLAG_KEY = "brahma.new"
"""Flag metadata key marking a flag created for a release: the kill switch turns these off."""

ON, OFF = "on", "off"
DEFAULT_VARIANTS: Mapping[str, Any] = {ON: True, OFF: False}
_USER = {"var": "targetingKey"}


@dataclass(frozen=True)
class Flag:
    """One flag as Brahma sees it."""

    name: str
    enabled: bool
    """State ENABLED; a disabled flag makes every caller get its own default value."""
    percentage: int | None = 0
    """Share of users (0-100) who get "on"; None when the targeting is not Brahma's."""
    allowed_users: tuple[str, ...] = ()
    """Targeting keys that always get "on" while the flag is enabled."""
    variants: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_VARIANTS))
    new: bool = False
    """Created for a release (metadata brahma.new): the kill switch turns it off."""
    read_only: bool = False
    """The targeting was written by someone else; Brahma shows the flag but never changes it."""

    def to_dict(self) -> dict[str, Any]:
        """The flag as plain JSON data, for journal records."""
        return {
            "name": self.name,
            "enabled": self.enabled,
            "percentage": self.percentage,
            "allowed_users": list(self.allowed_users),
            "variants": dict(self.variants),
            "new": self.new,
            "read_only": self.read_only,
        }


@dataclass(frozen=True)
class FlagChange:
    """One flag changed, ready for the journal: the model before (None when created) and after."""

    flag: str
    old: dict[str, Any] | None
    new: dict[str, Any]
    actor: str
    reason: str = ""


def rollout_rules(percentage: int, allowed_users: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    """The targeting (None for none) and defaultVariant that give `percentage` of users plus `allowed_users` "on"."""
    if percentage == 100:
        rest: str | dict[str, Any] = ON
    elif percentage == 0:
        rest = OFF
    else:
        rest = {"fractional": [[ON, percentage], [OFF, 100 - percentage]]}
    # Users with no targeting key fall through `fractional` to the default variant: keep them "off".
    default_variant = ON if percentage == 100 else OFF
    if allowed_users:
        return {"if": [{"in": [_USER, list(allowed_users)]}, ON, rest]}, default_variant
    if isinstance(rest, dict):
        return rest, default_variant
    return None, default_variant


def flag_from_definition(name: str, definition: Mapping[str, Any]) -> Flag:
    """Brahma's view of one flagd flag definition; read-only unless Brahma could have written it."""
    metadata = definition.get("metadata")
    new = isinstance(metadata, Mapping) and metadata.get(NEW_FLAG_KEY) is True
    state = definition.get("state")
    variants = definition.get("variants")
    rollout = _brahma_rollout(definition)
    if state not in ("ENABLED", "DISABLED") or rollout is None:
        return Flag(
            name,
            enabled=state == "ENABLED",
            percentage=None,
            variants=variants if isinstance(variants, Mapping) else {},
            new=new,
            read_only=True,
        )
    percentage, allowed_users = rollout
    return Flag(name, state == "ENABLED", percentage, allowed_users, variants, new)


def definition_for(flag: Flag, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flagd definition of `flag`, keeping the keys and key order of `base` (its current definition)."""
    definition: dict[str, Any] = dict(base) if base is not None else {}
    targeting, default_variant = rollout_rules(flag.percentage or 0, flag.allowed_users)
    definition["state"] = "ENABLED" if flag.enabled else "DISABLED"
    definition["variants"] = dict(flag.variants)
    definition["defaultVariant"] = default_variant
    if targeting is None:
        definition.pop("targeting", None)
    else:
        definition["targeting"] = targeting
    metadata = dict(definition.get("metadata") or {})
    if flag.new:
        metadata[NEW_FLAG_KEY] = True
    else:
        metadata.pop(NEW_FLAG_KEY, None)
    if metadata:
        definition["metadata"] = metadata
    else:
        definition.pop("metadata", None)
    return definition


def _brahma_rollout(definition: Mapping[str, Any]) -> tuple[int, tuple[str, ...]] | None:
    """(percentage, allowed users) when the flag's rules are exactly what Brahma writes for them, else None."""
    variants = definition.get("variants")
    if not isinstance(variants, Mapping) or ON not in variants or OFF not in variants:
        return None
    targeting = definition.get("targeting") or None
    default_variant = definition.get("defaultVariant")
    candidate = _read_rollout(targeting, default_variant)
    if candidate is None or rollout_rules(*candidate) != (targeting, default_variant):
        return None
    return candidate


def _read_rollout(targeting: Any, default_variant: Any) -> tuple[int, tuple[str, ...]] | None:
    """A guess at (percentage, allowed users) from the rule's shape; `_brahma_rollout` confirms it."""
    if targeting is None:
        return {ON: (100, ()), OFF: (0, ())}.get(default_variant) if isinstance(default_variant, str) else None
    allowed_users: tuple[str, ...] = ()
    rest = targeting
    try:
        if "if" in targeting:
            condition, _, rest = targeting["if"]
            allowed_users = tuple(condition["in"][1])
        if rest in (ON, OFF):
            percentage = 100 if rest == ON else 0
        else:
            percentage = rest["fractional"][0][1]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
        return None
    if not all(isinstance(user, str) for user in allowed_users):
        return None
    return percentage, allowed_users
