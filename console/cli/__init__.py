"""`python -m console.cli`: brahma as the tests, CI and the detached controller run it (console/app/cli.py)."""
