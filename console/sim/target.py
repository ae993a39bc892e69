"""The simulated target: stable and new versions, their replicas and the traffic split.

Its state lives in a file beside the journal, like a cluster that outlives the console: a
resumed run finds the traffic where the killed one left it, and every real change is logged so
tests can prove none happened twice.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from console import strict_json
from console.atomic import atomic_write
from console.targets.base import RollbackReadBack, TargetStatus


def previous_image(image: str) -> str:
    """What the simulator runs as stable before the release: the same repository, tag `previous`."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}:previous"


@dataclass
class SimCluster:
    """The simulated cluster: the images, the traffic share and the changes made to it."""

    stable_image: str
    new_image: str | None = None
    weight: int = 0
    """Percent of traffic on the new version."""
    new_deployed: bool = False
    """The new version runs (canary replicas, green, or the rolled fleet)."""
    replicas: int = 10
    changes: list[dict[str, Any]] = field(default_factory=list)


class SimTarget:
    """The strategies' mechanics on a simulated cluster; every call idempotent."""

    def __init__(self, strategy: str, new_image: str, stable_image: str, replicas: int = 10, state_file: Path | None = None):
        self.strategy, self.image, self.state_file = strategy, new_image, state_file
        self.cluster = self._load() or SimCluster(stable_image=stable_image, replicas=replicas)

    def _load(self) -> SimCluster | None:
        if self.state_file is None or not self.state_file.exists():
            return None
        return SimCluster(**json.loads(self.state_file.read_text()))

    def _commit(self, change: dict[str, Any], **values: Any) -> None:
        """Change the cluster once the change is saved: a save that fails (EACCES, EMFILE) changes nothing,
        so a retry finds the target as the file (the cluster that outlives the console) has it."""
        proposed = replace(self.cluster, **values, changes=[*self.cluster.changes, change])
        if self.state_file is not None:
            atomic_write(self.state_file, strict_json.dumps(asdict(proposed), indent=1).encode())
        vars(self.cluster).update(vars(proposed))  # in place: whoever holds the cluster (the metric source) sees it

    async def prepare(self) -> tuple[dict[str, Any], list[str]]:
        cluster = self.cluster
        before = {"stable_image": cluster.stable_image, "weight": cluster.weight, "replicas": cluster.replicas}
        changes = {
            "canary": [
                f"create canary {self.image} beside stable {cluster.stable_image}",
                "shift traffic by stage weights",
                f"promote: stable image → {self.image}",
            ],
            "blue-green": [f"deploy green {self.image} beside blue {cluster.stable_image}", "switch all traffic to green", "keep blue for the rollback window"],
            "rolling": [f"set image {cluster.stable_image} → {self.image} in place"],
        }[self.strategy]
        return before, changes

    def canary_replicas(self) -> int:
        if not self.cluster.new_deployed or self.cluster.weight >= 100:
            return 0
        return max(1, math.ceil(self.cluster.replicas * self.cluster.weight / 100))

    async def set_weight(self, weight: int) -> bool:
        cluster = self.cluster
        if cluster.weight == weight and cluster.new_deployed and cluster.new_image == self.image:
            return False
        promoted = weight >= 100 and self.strategy == "canary"  # promotion: stable takes the new image
        stable_image = self.image if promoted else cluster.stable_image
        self._commit({"op": "set_weight", "weight": weight}, new_image=self.image, new_deployed=True, weight=weight, stable_image=stable_image)
        return True

    async def rollback(self, before: dict[str, Any]) -> bool:
        cluster = self.cluster
        if cluster.weight == 0 and not cluster.new_deployed and cluster.stable_image == before["stable_image"]:
            return False
        self._commit({"op": "rollback", "stable_image": before["stable_image"]}, stable_image=before["stable_image"], weight=0, new_deployed=False)
        return True

    async def read_back_rollback(self, before: dict[str, Any]) -> RollbackReadBack:
        """The saved state (the cluster that outlives the console); memory only when nothing was ever saved."""
        saved = self._load() or self.cluster
        problems = []
        if saved.weight or saved.new_deployed:
            problems.append(f"the new version {saved.new_image} still runs, serving {saved.weight}%")
        if saved.stable_image != before["stable_image"]:
            problems.append(f"stable runs {saved.stable_image}, not {before['stable_image']}")
        where = "saved state" if self.state_file is not None else "state"
        observed = f"{where}: stable {saved.stable_image}, new version " + (f"{saved.weight}%" if saved.new_deployed else "not deployed")
        return RollbackReadBack(observed, tuple(problems))

    async def drift(self, weight: int, before: dict[str, Any]) -> list[str]:
        """The state file where it differs from what this release leaves at `weight`: someone else changed it."""
        found = self._load()
        if found is None:
            return []
        promoted = weight >= 100 and self.strategy == "canary"
        left = SimCluster(
            stable_image=self.image if promoted else before["stable_image"],
            new_image=self.image,
            weight=weight,
            new_deployed=True,
            replicas=before["replicas"],
        )
        return [
            f"sim cluster {name}: {getattr(left, name)} → {getattr(found, name)}"
            for name in ("stable_image", "new_image", "weight", "new_deployed", "replicas")
            if getattr(found, name) != getattr(left, name)
        ]

    async def finish(self) -> None:
        # The new version now is stable: blue-green keeps the old colour for the rollback window, modelled as nothing to do.
        return None

    async def status(self) -> TargetStatus:
        cluster = self.cluster
        detail = {"replicas": cluster.replicas, "canary_replicas": self.canary_replicas()}
        return TargetStatus(cluster.weight, cluster.stable_image, cluster.new_image if cluster.new_deployed else None, True, detail)

    async def close(self) -> None:
        return None
