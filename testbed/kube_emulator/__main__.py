"""`python -m testbed.kube_emulator --kubeconfig PATH [--port N]`: serve until interrupted.

Prints the server's URL on stdout once it is ready, and writes a kubeconfig to PATH first.
"""

from __future__ import annotations

import argparse
import signal
import threading

from .emulator import DEFAULT_TOKEN, KubeEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.kube_emulator", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig (context: emulator)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token the server accepts")
    parser.add_argument(
        "--step-delay",
        type=float,
        default=0.0,
        help="seconds between a Deployment's scaling steps (default 0: roll out at once)",
    )
    args = parser.parse_args(argv)

    finished = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: finished.set())
    with KubeEmulator(args.kubeconfig, port=args.port, token=args.token, step_delay=args.step_delay) as kube:
        print(kube.url, flush=True)
        finished.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
