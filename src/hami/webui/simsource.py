"""Sources that read no API server: `hami sim` files (`SimSource`), placed in order by the
decision core as `hami sim` places them, and a fixed snapshot (`StaticSource`, tests and
benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from hami.api import annotations as codec
from hami.api import keys
from hami.core.accounting import PlacedPod
from hami.core.config import SchedulerConfig
from hami.core.decide import commit, decide
from hami.core.vendor import Vendor
from hami.k8s.api import Manifest
from hami.k8s.files import ManifestFileError, documents
from hami.webui.decode import _pod_info, build_snapshot
from hami.webui.snapshot import DraState, Snapshot, SourceError


class SimSource:
    """`hami sim` input files: CLUSTER.yaml (Nodes, placed Pods) and PODS.yaml (pods to place,
    in order, as `hami sim` places them; those that do not fit stay Pending)."""

    def __init__(
        self,
        cluster: Path,
        pods: Path | None,
        vendors: Mapping[str, Vendor],
        config: SchedulerConfig,
    ) -> None:
        self.vendors = vendors
        self.config = config
        self._snapshot = sim_snapshot(cluster, pods, vendors, config)

    async def start(self) -> None:
        """Nothing to prime: the snapshot is built already."""

    async def stop(self) -> None:
        """Nothing runs."""

    async def snapshot(self) -> Snapshot:
        """The placed files, as of now (so history keeps sampling them)."""
        return replace(self._snapshot, taken_at=time.time())


class StaticSource:
    """A fixed snapshot (tests, benchmarks)."""

    def __init__(
        self,
        snapshot: Snapshot,
        vendors: Mapping[str, Vendor],
        config: SchedulerConfig | None = None,
    ) -> None:
        self.vendors = vendors
        self.config = config or SchedulerConfig()
        self._snapshot = snapshot

    async def start(self) -> None:
        """Nothing to prime: the snapshot is built already."""

    async def stop(self) -> None:
        """Nothing runs."""

    async def snapshot(self) -> Snapshot:
        return self._snapshot


def read_manifests(path: Path) -> list[Manifest]:
    """Every object of a YAML file (``kind: List`` unpacked)."""
    try:
        return [doc for _, doc in documents(path)]
    except ManifestFileError as exc:
        raise SourceError(str(exc)) from None


def sim_snapshot(
    cluster: Path, pods: Path | None, vendors: Mapping[str, Vendor], config: SchedulerConfig
) -> Snapshot:
    objs = read_manifests(cluster)
    nodes = [o for o in objs if o.get("kind") == "Node"]
    placed = [o for o in objs if o.get("kind") == "Pod"]
    queued = [o for o in read_manifests(pods) if o.get("kind", "Pod") == "Pod"] if pods else []
    quotas = [o for o in objs if o.get("kind") == "ResourceQuota"]
    dra = DraState(
        [o for o in objs if o.get("kind") == "ResourceClaim"],
        [o for o in objs if o.get("kind") == "ResourceSlice"],
    )
    base = build_snapshot(nodes, placed, vendors, config, admit=True, quotas=quotas, dra=dra)
    return place_in_order(base, queued, vendors, config)


def place_in_order(
    base: Snapshot,
    queued: Sequence[Manifest],
    vendors: Mapping[str, Vendor],
    config: SchedulerConfig,
    stop_before: str | None = None,
) -> Snapshot:
    """Place ``queued`` pods one at a time with the core (as `hami sim` does); ``stop_before``
    (``namespace/name``) stops there and leaves that pod and the rest unplaced."""
    view = base.view
    pods = list(base.pods)
    notices = list(base.notices)
    candidates = base.node_names  # DRA nodes left out: kube-scheduler places there
    stopped = False
    for manifest in queued:
        info = _pod_info(manifest, vendors, config, admit=True)
        if info is None:
            continue
        stopped = stopped or info.key == stop_before
        if info.request is None or stopped:
            pods.append(info)
            continue
        decision = decide(info.request, view, vendors, candidates)
        if decision.fit is not None and decision.node is not None:
            view = commit(view, decision)
            devices = {v: decision.fit.devices(v) for v in decision.fit.picks}
            allocations = decision.annotations.get(keys.MIG_ALLOCATIONS)
            placed = PlacedPod(
                info.key,
                decision.node,
                devices,
                info.request.init_count,
                mig=codec.decode_mig_allocations(allocations) if allocations else (),
                task_classes=decision.fit.task_classes(),
            )
            info = replace(info, phase="Running", node=decision.node, placed=placed)
        pods.append(info)
    notices += [f"pod {p.key}: {p.problem}" for p in pods[len(base.pods) :] if p.problem]
    return replace(
        base, pods=tuple(sorted(pods, key=lambda p: p.key)), view=view, notices=tuple(notices)
    )
