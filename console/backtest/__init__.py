"""Backtests: a plan replayed over Prometheus history by the same controller and judge, in virtual time."""
