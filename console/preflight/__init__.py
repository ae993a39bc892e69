"""The pre-flight gate: automated checks and sign-offs that must pass before anything changes."""

from console.preflight.context import PreflightContext
from console.preflight.gate import CheckResult, Gate

__all__ = ["CheckResult", "Gate", "PreflightContext"]
