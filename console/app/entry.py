"""The `brahma` command and `python -m console.app`: brahma as the tests, CI and the detached controller run it (console/app/cli.py)."""

import gc
import sys


def brahma() -> None:
    from console.app.cli import main

    code = main()
    # What is left is freed by the exit: frozen, it is not searched for reference cycles first, which
    # takes a run on the simulator longer than its report (everything main opened is closed by now).
    gc.freeze()
    sys.exit(code)
