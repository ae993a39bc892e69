"""Metric sources: the simulator and Prometheus."""
