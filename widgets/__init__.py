"""Reusable Textual widgets for progressive delivery consoles, one per file.

They take plain data (their own small dataclasses) and post messages; none of them knows
where a rollout runs or where its metrics come from.
"""
