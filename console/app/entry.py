"""The `brahma` command and `python -m console.app`: brahma as the tests, CI and the detached controller run it (console/app/cli.py)."""

import gc
import sys


def brahma() -> None:
    # Start-up (imports above all) makes many objects and little garbage: the cyclic collector's passes over
    # them are time before the first frame. cli.main collects again once start-up is over (for a console,
    # once its first frame shows).
    gc.disable()
    from console.app.cli import main

    code = main()
    # What is left is freed by the exit: frozen, it is not searched for reference cycles first, which
    # takes a run on the simulator longer than its report (everything main opened is closed by now).
    gc.freeze()
    sys.exit(code)
