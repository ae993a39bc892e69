"""Rollout plans: the model, the YAML and HCL loaders, the defaults and validation."""

from console.plan.loader import PlanError, Problem, load_plan, load_plan_text
from console.plan.model import RolloutPlan, Stage, Trigger

__all__ = ["PlanError", "Problem", "RolloutPlan", "Stage", "Trigger", "load_plan", "load_plan_text"]
