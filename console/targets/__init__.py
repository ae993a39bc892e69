"""Targets: the simulator and Kubernetes."""
