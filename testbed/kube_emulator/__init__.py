"""A Kubernetes API server emulator for tests: kubectl and the kubernetes client work against it.

    from testbed.kube_emulator import KubeEmulator

    with KubeEmulator() as kube:
        ...  # kube.url, kube.kubeconfig_path, kube.store, kube.fail(...), kube.deny(...)

or as a command: `python -m testbed.kube_emulator --kubeconfig PATH [--port N]`.
"""

from .emulator import CONTEXT, DEFAULT_TOKEN, KubeEmulator
from .errors import ApiError
from .faults import Fault
from .server import RequestRecord

__all__ = ["CONTEXT", "DEFAULT_TOKEN", "ApiError", "Fault", "KubeEmulator", "RequestRecord"]
