"""Past releases as a pattern library, and the think step that reads it.

records.py folds each journal a state dir keeps (the finished ones archived beside it among them) into one
release's record: its outcome, planned and actual duration, its pauses and rollbacks with their reasons,
triggers and measured time to rollback. assess.py answers the reference think step for a plan from those
records, the plan and what the target says. cluster.py reads a Deployment's recent rollout times.
"""
