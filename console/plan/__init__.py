"""Rollout plans: the model, the YAML and HCL loaders, the defaults and validation.

The names below are loaded on first use: the checks, defaults and names of this package are read
by modules (the controller's judgement, the console) that must not pay for the loader's pydantic
models and YAML parser when they only fold a journal."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.plan.loader import PlanError, Problem, load_plan, load_plan_text
    from console.plan.model import RolloutPlan, Stage, Trigger

_HOMES = {
    "PlanError": "console.plan.loader",
    "Problem": "console.plan.loader",
    "load_plan": "console.plan.loader",
    "load_plan_text": "console.plan.loader",
    "RolloutPlan": "console.plan.model",
    "Stage": "console.plan.model",
    "Trigger": "console.plan.model",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
