"""make bench (bench/run.py): every benchmark runs, whichever fails, and the failed ones are named."""

import subprocess
import sys

from tests.conftest import ROOT

RUNNER = f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import run; sys.exit(run.main(__import__('pathlib').Path(sys.argv[1]), timeout_s=2))"


def test_every_benchmark_runs_though_one_fails_and_one_hangs_and_both_are_named(tmp_path):
    (tmp_path / "bench_a_breaks.py").write_text("print('BENCH a_s 1.0 s'); raise RuntimeError('half-way')\n")
    (tmp_path / "bench_b_hangs.py").write_text("import time\nprint('BENCH b_s 2.0 s', flush=True)\ntime.sleep(60)\n")
    (tmp_path / "bench_c_works.py").write_text("print('BENCH c_s 3.0 s')\n")
    result = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["BENCH a_s 1.0 s", "BENCH b_s 2.0 s", "BENCH c_s 3.0 s"]
    assert "bench: failed: bench_a_breaks.py (exit 1), bench_b_hangs.py (timed out after 2s)" in result.stderr


def test_a_run_in_which_every_benchmark_ran_through_exits_0(tmp_path):
    (tmp_path / "bench_works.py").write_text("print('BENCH works_s 1.0 s')\n")
    result = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "BENCH works_s 1.0 s\n", "")
