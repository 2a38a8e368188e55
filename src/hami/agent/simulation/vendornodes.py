"""Playing kubelet and the vendors' device plugins for nodes given as manifests
(``hami device-plugin --simulate --node-manifests``; the manifests: :mod:`hami.k8s.manifests`).

Registration, per node, every ``interval`` seconds: create the kwok node if it is missing (with
its status, as kubelet registers), write the manifest's labels and capacity/allocatable (status
subresource) the first time the node is seen, restore any registration annotation that differs
from the manifest (the scheduler removes some on cleanup, wire-format.md §2.7), and answer the
handshake: a key holding anything but ``Reported …`` (the scheduler's ``Requesting_<time>``,
``Deleted_<time>``, or nothing) gets ``Reported <time>``, as the vendors' plugins write it.

After bind (a pod bound to such a node with ``hami.io/bind-phase: allocating``): what the
vendor's plugin does once it allocated the pod — ``hami.io/bind-phase: success``, then the node
locks of the vendors whose devices the pod's regular containers got are released (each vendor's
``node_lock``; `hami.io/mutex.lock` when it names none; owner-checked, resourceVersion-guarded),
so the next bind on the node is not blocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from hami.agent.allocation.allocator import is_waiting
from hami.agent.errors import AgentError
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.core.vendor import Vendor, lock_specs
from hami.k8s.api import Conflict, KubeAPIError
from hami.k8s.manifests import ManifestNode
from hami.k8s.port import KubePort
from hami.k8s.views import NodeInfo, PodInfo, annotations_patch

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def reported(moment: datetime) -> str:
    """The plugins' handshake answer: ``Reported <Go time.String()>`` (§2.7)."""
    return f"{keys.HANDSHAKE_REPORTED} {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f} +0000 UTC"


def lock_keys(vendors: Mapping[str, Vendor], used: Sequence[str]) -> tuple[str, ...]:
    """The distinct node-lock keys of the ``used`` vendors, in sorted vendor-key order."""
    return tuple(spec.key for spec in lock_specs(vendors, used))


def app_vendors(vendors: Mapping[str, Vendor], pod: PodInfo) -> list[str]:
    """The vendors whose devices the pod's regular containers hold (they locked at bind)."""
    used = []
    for key, vendor in vendors.items():
        try:
            devices = vendor.allocated_devices(pod.annotations)
        except WireFormatError as exc:
            log.warning("pod %s: %s", pod.ref, exc)
            continue
        if devices and any(devices[pod.init_count :]):
            used.append(key)
    return used


class ManifestPlayer:
    """kubelet and the device plugins of every vendor, for nodes described by manifests."""

    def __init__(
        self,
        kube: KubePort,
        nodes: Sequence[ManifestNode],
        vendors: Mapping[str, Vendor],
        *,
        interval: float = 30.0,
        pod_phases: frozenset[str] = frozenset({"Pending", "Running"}),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.kube = kube
        self.nodes = {n.name: n for n in nodes}
        self.vendors = vendors
        self.interval = interval
        self._phases = pod_phases
        self._clock = clock
        self._seen: dict[str, str] = {}  # node name → the uid whose labels/status we wrote

    # --- registration ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Register every node, then keep its registration and handshake answered."""
        while True:
            await self.sync_all()
            await asyncio.sleep(self.interval)

    async def sync_all(self) -> int:
        """One pass over every node; returns how many were written to."""
        written = 0
        for node in self.nodes.values():
            try:
                written += await self.sync(node)
            except (AgentError, KubeAPIError) as exc:
                log.warning("node %s: registration failed: %s", node.name, exc)
        return written

    async def sync(self, node: ManifestNode) -> bool:
        """Bring one node in line with its manifest; True when an API write was made."""
        current = await self._get_or_create(node)
        values = {k: v for k, v in node.annotations.items() if current.annotations.get(k) != v}
        values.update(self._answers(node, current.annotations))
        if self._seen.get(node.name) != current.uid:
            patch = annotations_patch(values)
            patch["metadata"]["labels"] = dict(node.labels)
            await self.kube.patch_node(node.name, patch)
            await self.kube.patch_node_status(node.name, node.status())
            self._seen[node.name] = current.uid
            log.info("node %s: registered %s", node.name, ", ".join(node.vendors))
            return True
        if not values:
            return False
        await self.kube.patch_node(node.name, annotations_patch(values))
        log.info("node %s: wrote %s", node.name, ", ".join(sorted(values)))
        return True

    async def _get_or_create(self, node: ManifestNode) -> NodeInfo:
        try:
            return await self.kube.get_node(node.name)
        except KubeAPIError as exc:
            if exc.status != 404:
                raise
        try:
            await self.kube.create_node(node.to_object(self._answers(node, {})))
            log.info("node %s: created", node.name)
        except Conflict:
            pass  # created meanwhile by someone else: patched below like any existing node
        return await self.kube.get_node(node.name)

    def _answers(self, node: ManifestNode, annotations: Mapping[str, str]) -> dict[str, str]:
        answer = reported(self._clock())
        return {
            key: answer
            for key in node.handshakes
            if not annotations.get(key, "").startswith(keys.HANDSHAKE_REPORTED)
        }

    # --- after bind ----------------------------------------------------------------------------

    def waiting(self, pod: PodInfo) -> bool:
        """A pod bound to one of these nodes whose plugin bookkeeping is still to be done."""
        return (
            pod.node_name in self.nodes
            and is_waiting(pod, pod.node_name, self._phases)
            and pod.annotations.get(keys.BIND_PHASE) != keys.BIND_PHASE_SUCCESS
        )

    async def admit(self, pod: PodInfo) -> None:
        """bind-phase success, then the vendors' node locks released (raises AgentError)."""
        values = {keys.BIND_PHASE: keys.BIND_PHASE_SUCCESS}
        await self.kube.patch_pod(pod.namespace, pod.name, annotations_patch(values))
        for key in lock_keys(self.vendors, app_vendors(self.vendors, pod)):
            await self.kube.release_node_lock(pod.node_name, pod, key=key)
        log.info("pod %s on node %s: allocated", pod.ref, pod.node_name)
