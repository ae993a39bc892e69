"""`brahma validate` on hostile and huge plans: the wall time of the command, as an operator waits for it.

validate_sample_plan_s        the sample canary: the command's own cost (start-up, imports)
validate_alias_bomb_s         a 1 KB YAML "billion laughs" (nine levels of nine aliases), refused (goal < 1 s)
validate_1mib_plan_s          a valid YAML plan just under the 1 MiB limit (thousands of pre-flight items)
validate_64kib_hcl_plan_s     a valid HCL plan just under its 64 KiB limit
validate_50mib_plan_s         a 50 MB plan, refused for its size without being read

Run from the repository root: python bench/bench_validate.py (exit 1 when a plan is not judged as expected).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5
LEVELS = 9


def alias_bomb() -> str:
    anchors = [f"l0: &l0 [{', '.join(['lol'] * LEVELS)}]"]
    anchors += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * LEVELS)}]" for n in range(1, LEVELS)]
    return "app: checkout\nimage: r/checkout:2.4.1\nmetrics:\n  queries:\n" + "".join(f"    {line}\n" for line in anchors)


def preflight_items(limit: int, item: str, head: str) -> str:
    """A plan of `head` and as many numbered copies of `item` as fit in `limit` bytes."""
    count = (limit - len(head) - 64) // len(item.format(n=10**6))
    return head + "".join(item.format(n=n) for n in range(count))


def wall_time(plan: Path, expected_code: int) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "console.app", "validate", str(plan)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - started)
        if result.returncode != expected_code:
            raise SystemExit(f"{plan.name}: validate exited {result.returncode}, not {expected_code}: {result.stderr[:300]}")
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        bomb = folder / "bomb.yaml"
        bomb.write_text(alias_bomb())
        big_yaml = folder / "big.yaml"
        big_yaml.write_text(preflight_items(1 << 20, "  - {{name: check-{n}, kind: manual}}\n", "app: checkout\nimage: r/checkout:2.4.1\npreflight:\n"))
        big_hcl = folder / "big.hcl"
        big_hcl.write_text(
            preflight_items(64 << 10, 'preflight {{\n  name = "check-{n}"\n  kind = "manual"\n}}\n', 'app = "checkout"\nimage = "r/checkout:2.4.1"\n')
        )
        huge = folder / "huge.yaml"
        with open(huge, "w") as file:
            file.write("app: checkout\nimage: r/checkout:2.4.1\n")
            file.write("# padding\n" * (5 << 20))
        figures = {
            "validate_sample_plan_s": wall_time(ROOT / "sample_configs" / "canary.yaml", 0),
            "validate_alias_bomb_s": wall_time(bomb, 2),
            "validate_1mib_plan_s": wall_time(big_yaml, 0),
            "validate_64kib_hcl_plan_s": wall_time(big_hcl, 0),
            "validate_50mib_plan_s": wall_time(huge, 2),
        }
    for name, seconds in figures.items():
        print(f"BENCH {name} {seconds:.3f} s")


if __name__ == "__main__":
    main()
