"""The async rollout controller: reconcile loop, pure analysis, clock, events, journal."""
