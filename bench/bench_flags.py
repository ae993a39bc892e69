"""Flag store benchmarks, printed as `BENCH <name> <value> <unit>` lines.

flag_kill_to_default_s   time from the kill call until a running flagd file provider (polling
                         every 100 ms) returns the caller's default; the median of several kills
                         made at random points of the provider's poll cycle (never above the
                         poll interval plus the write)
flag_lost_updates        two processes each make 200 changes to their own flag of one file at
                         full speed; changes missing at the end (must be 0)
flag_invalid_reads       reads of that file, taken throughout, that were not valid JSON (must be 0)
flag_conflicts_reapplied changes the two processes had to re-apply because the other wrote first

Run from the repository root: python bench/bench_flags.py (exit 1 when an update was lost
or a read was invalid).
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openfeature import api  # noqa: E402
from openfeature.contrib.provider.flagd import FlagdProvider  # noqa: E402
from openfeature.contrib.provider.flagd.config import ResolverType  # noqa: E402
from openfeature.evaluation_context import EvaluationContext  # noqa: E402
from openfeature.flag_evaluation import Reason  # noqa: E402

from console.flags import FileBackend, FlagStore  # noqa: E402

FLAG = "new-checkout"
KILLS = 15
POLL_INTERVAL_MS = 100
CHANGES_PER_WRITER = 200
TIMEOUT_S = 10.0

# One writer process: waits for the start signal, then gives `count` users access to its flag.
WRITER = """
import sys, time
from pathlib import Path
from console.flags import FileBackend, FlagStore
path, flag, prefix, count, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
store = FlagStore(FileBackend(path))
while not start.exists():
    time.sleep(0.001)
print(sum(store.allow(flag, f"{prefix}-{i}", actor=prefix).conflicts for i in range(count)))
"""


def kill_to_default_s(directory: Path) -> float:
    """Median seconds from `kill` to the provider answering with the caller's default."""
    path = directory / "kill.json"
    store = FlagStore(FileBackend(path))
    store.create(FLAG, actor="bench")
    store.set_percentage(FLAG, 100, actor="bench")
    provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path), deadline_ms=POLL_INTERVAL_MS)
    domain = f"bench-{uuid.uuid4()}"
    api.set_provider_and_wait(provider, domain)
    client = api.get_client(domain)
    context = EvaluationContext(targeting_key="user-1")
    durations = []
    try:
        for _ in range(KILLS):
            store.enable(FLAG, actor="bench")
            wait_for(lambda: client.get_boolean_details(FLAG, False, context).reason == Reason.STATIC)
            # The provider has just polled: kill at a random point of its cycle, as an operator would.
            time.sleep(random.uniform(0, POLL_INTERVAL_MS / 1000))
            started = time.perf_counter()
            store.kill([FLAG], actor="bench", reason="benchmark")
            wait_for(lambda: client.get_boolean_details(FLAG, False, context).reason == Reason.DISABLED)
            durations.append(time.perf_counter() - started)
    finally:
        provider.shutdown()
    return statistics.median(durations)


def wait_for(condition) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the provider did not catch up within {TIMEOUT_S}s")
        time.sleep(0.001)


def concurrent_writers(directory: Path) -> tuple[int, int, int]:
    """(lost updates, invalid reads, conflicts re-applied) for two processes writing one file at full speed."""
    path, start = directory / "race.json", directory / "start"
    store = FlagStore(FileBackend(path))
    writers = {"a": "new-checkout", "b": "search-v2"}
    for flag in writers.values():
        store.create(flag, actor="bench")

    invalid_reads = [0]
    done = threading.Event()

    def read_throughout() -> None:
        while not done.is_set():
            try:
                json.loads(path.read_text())
            except json.JSONDecodeError:
                invalid_reads[0] += 1

    reader = threading.Thread(target=read_throughout)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), flag, prefix, str(CHANGES_PER_WRITER), str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for prefix, flag in writers.items()
    ]
    reader.start()
    start.touch()
    try:
        conflicts = sum(int(process.communicate(timeout=120)[0]) for process in processes)
    finally:
        done.set()
        reader.join()
    present = sum(len(set(store.get(flag).allowed_users) & {f"{prefix}-{i}" for i in range(CHANGES_PER_WRITER)}) for prefix, flag in writers.items())
    return len(writers) * CHANGES_PER_WRITER - present, invalid_reads[0], conflicts


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        kill_s = kill_to_default_s(Path(directory))
        lost, invalid, conflicts = concurrent_writers(Path(directory))
    print(f"BENCH flag_kill_to_default_s {kill_s:.3f} s")
    print(f"BENCH flag_lost_updates {lost} count")
    print(f"BENCH flag_invalid_reads {invalid} count")
    print(f"BENCH flag_conflicts_reapplied {conflicts} count")
    return 1 if lost or invalid else 0


if __name__ == "__main__":
    sys.exit(main())
