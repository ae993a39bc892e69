"""Pytest fixtures. To offer them to every test, add this line to tests/conftest.py:

from testbed.kube_emulator.fixtures import kube_emulator  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .emulator import KubeEmulator


@pytest.fixture
def kube_emulator(tmp_path: Path) -> Iterator[KubeEmulator]:
    """A running emulator for one test; its kubeconfig is at `kube_emulator.kubeconfig_path` (in tmp_path).

    The test errors at teardown if the emulator's own controllers failed, so emulator bugs never pass quietly.
    """
    with KubeEmulator(tmp_path / "kubeconfig") as kube:
        yield kube
    assert not kube.controllers.errors, "the kube emulator's controllers failed:\n" + "\n".join(kube.controllers.errors)
