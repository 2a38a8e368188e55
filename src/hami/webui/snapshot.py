"""What the web UI and `hami explain` show: the rows (`NodeEntry`, `PodEntry`), the `Snapshot`
that holds them with the core's view, and the `Source` protocol that yields snapshots.

The sources are `hami.webui.livesource` (the API server) and `hami.webui.simsource` (sim
files); both build their snapshots with `hami.webui.decode`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hami.api.types import ContainerDevice
from hami.core.accounting import PlacedPod
from hami.core.cluster import ClusterView
from hami.core.config import SchedulerConfig
from hami.core.model import Node, PodRequest
from hami.core.quota import QuotaBook
from hami.core.vendor import Vendor
from hami.k8s import objects
from hami.k8s.api import Manifest


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """A node as the web UI shows it: its decoded devices (not hami.k8s.views.NodeInfo, the
    raw fields the device plugin reads)."""

    name: str
    node: Node  # devices as registered (none when unregistered or malformed)
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str = ""  # InternalIP, for the node monitor
    problem: str = ""


@dataclass(frozen=True, slots=True)
class PodEntry:
    """A pod as the web UI shows it: where its slices are and what it asks for."""

    namespace: str
    name: str
    phase: str
    node: str | None  # the node holding its devices (hami.io/vgpu-node or the sim's choice)
    placed: PlacedPod | None  # its slices
    request: PodRequest | None  # its device requests (None when it cannot be parsed)
    problem: str = ""
    started: str = ""  # status.startTime, else metadata.creationTimestamp (RFC 3339)
    # A DRA pod whose claims are not allocated (or not created) yet: its manifest, explained
    # from the claims and slices as `hami explain` does (`hami.webui.drapending`, docs/dra.md)
    dra: Manifest | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pending(self) -> bool:
        if self.placed is not None:
            return False
        if self.dra is not None:
            return True
        return self.request is not None and self.request.wants_devices


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[NodeEntry, ...]
    pods: tuple[PodEntry, ...]
    view: ClusterView
    taken_at: float
    notices: tuple[str, ...] = ()
    stale_since: float | None = None  # set while the source shows its last good snapshot
    quotas: QuotaBook | None = None  # hami's namespace quotas (ResourceQuota limits.<resource>)
    dra_nodes: frozenset[str] = frozenset()  # nodes whose devices are DRA's (docs/dra.md)
    dra: DraState | None = None  # the claims and slices (None: not served, or not readable)

    def node(self, name: str) -> NodeEntry | None:
        return next((n for n in self.nodes if n.name == name), None)

    def pod(self, namespace: str, name: str) -> PodEntry | None:
        return next((p for p in self.pods if p.namespace == namespace and p.name == name), None)

    @property
    def node_names(self) -> frozenset[str]:
        """The nodes the extender may place on (DRA nodes are kube-scheduler's)."""
        return frozenset(n.name for n in self.nodes) - self.dra_nodes


class Source(Protocol):
    """What the UI reads: a consistent snapshot, and the vendors to decode and explain with."""

    vendors: Mapping[str, Vendor]
    config: SchedulerConfig

    async def start(self) -> None:
        """Called once before the UI serves (a live source lists here)."""

    async def stop(self) -> None:
        """Called once when the UI stops."""

    async def snapshot(self) -> Snapshot: ...


class SourceError(Exception):
    """The source cannot be read at all (API server unreachable, unreadable file)."""


@dataclass(frozen=True, slots=True)
class DraState:
    """The cluster's ResourceClaims and ResourceSlices (docs/dra.md)."""

    claims: Sequence[Manifest] = ()
    slices: Sequence[Manifest] = ()

    @property
    def empty(self) -> bool:
        return not self.claims and not self.slices

    def key(self) -> object:
        """Changes whenever an object does (by name and resourceVersion)."""
        return tuple(
            (objects.namespace(m), objects.name(m), objects.resource_version(m))
            for m in (*self.claims, *self.slices)
        )


def slices(placed: PlacedPod) -> list[tuple[int, str, ContainerDevice]]:
    """(container position, vendor, device) for every device a placed pod holds."""
    return [
        (position, vendor, device)
        for vendor, per_container in sorted(placed.devices.items())
        for position, container in enumerate(per_container)
        for device in container
    ]
