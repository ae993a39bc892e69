"""The embedded simulator: a target and a metric source driven by scenario files."""
