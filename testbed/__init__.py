"""What Brahma's tests and benchmarks run it against: a Kubernetes API server emulator, a real
Prometheus with the demo service it scrapes, a terminal in tmux, and drivers for rollouts on them."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_configs"
