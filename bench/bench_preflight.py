"""BENCH preflight_gib_output_peak_rss_mb and preflight_gib_output_s: a command check whose program prints 1 GiB.

The gate runs in a Python process of its own, so the figure is that process's peak resident
memory (the printing program is not counted) and the wall time of the check. A check keeps the
head and the tail of what its program prints: the figure stays near what the interpreter and the
console's modules take, whatever the program prints.

    python bench/bench_preflight.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_BYTES = 1 << 30

GATE = """
import asyncio, json, resource, sys, time
from console.plan import load_plan_text
from console.preflight import Gate, PreflightContext
plan = load_plan_text(sys.argv[1], "bench.yaml")
started = time.monotonic()
[result] = asyncio.run(Gate(plan.preflight, PreflightContext(plan)).run_checks(lambda result: None))
print(json.dumps({"status": result.status, "output": result.output, "seconds": time.monotonic() - started,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> int:
    argv = ["head", "-c", str(OUTPUT_BYTES), "/dev/zero"]
    plan = f"app: checkout\nimage: r/checkout:2\npreflight:\n  - {{name: loud, kind: command, argv: {json.dumps(argv)}, timeout: 10m}}\n"
    finished = subprocess.run([sys.executable, "-c", GATE, plan], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if finished.returncode != 0:
        sys.stderr.write(finished.stderr)
        return 1
    result = json.loads(finished.stdout)
    print(f"BENCH preflight_gib_output_peak_rss_mb {result['peak_rss_kb'] / 1024:.1f} MB")
    print(f"BENCH preflight_gib_output_s {result['seconds']:.2f} s")
    return 0 if result["status"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
