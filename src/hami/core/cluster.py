"""An immutable view of the cluster's devices and usage, indexed by node score.

The default node score depends on existing usage only, so nodes can be kept ranked ahead of
time: a decision walks them best first and stops at the first that fits, rejecting hopeless
nodes from a per-vendor summary without a full fit.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from hami.core.model import (
    EMPTY_USAGE,
    MEM_PCT_UNSET,
    ContainerRequest,
    ContainerRequests,
    DeviceUsage,
    Node,
)
from hami.core.policy import node_score


@dataclass(frozen=True, slots=True)
class Room:
    """What one device with a free slot still offers."""

    memory: int
    cores: int
    idle: bool  # nobody uses it
    total_memory: int
    total_cores: int

    def takes(self, request: ContainerRequest) -> bool:
        """The capacity checks of a fit (memory, cores, exclusivity), without the gates."""
        cores = min(request.coresreq, 100)
        if request.memreq:
            memory = request.memreq
        elif request.mem_pct not in (0, MEM_PCT_UNSET):
            memory = self.total_memory * request.mem_pct // 100
        else:
            memory = 0
        if self.memory < memory or self.cores < cores:
            return False
        if cores == 100 and self.total_cores == 100 and not self.idle:
            return False
        return not (cores == 0 and self.cores == 0 and self.total_cores != 0)


@dataclass(frozen=True, slots=True)
class VendorRoom:
    """The devices of one vendor on a node that have a free slot."""

    devices: tuple[Room, ...]
    mig: bool  # a MIG GPU can host several instances: the device count is no bound
    # the vendor's memory/cores are not the sliced kind (e.g. AMD cores = % of compute units):
    # only the count of devices with a free slot bounds it
    loose: bool = False
    # k-th largest free memory / cores among them, for an O(1) first rejection
    memory: tuple[int, ...] = ()
    cores: tuple[int, ...] = ()

    def may_take(self, request: ContainerRequest) -> bool:
        if self.loose:
            return self.mig or len(self.devices) >= request.nums
        if not self.mig:
            k = request.nums
            if len(self.devices) < k:
                return False
            if self.memory[k - 1] < request.memreq or self.cores[k - 1] < min(
                request.coresreq, 100
            ):
                return False
        fitting = sum(1 for room in self.devices if room.takes(request))
        return fitting > 0 if self.mig else fitting >= request.nums


@dataclass(frozen=True, slots=True)
class NodeState:
    node: Node
    usage: tuple[DeviceUsage, ...]
    score: float
    room: Mapping[str, VendorRoom]
    # may_fit answers per request shape; a state never changes, so neither do they
    _memo: dict[tuple[ContainerRequests, ...], bool] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, node: Node, usage: Sequence[DeviceUsage] | None = None) -> NodeState:
        taken = tuple(usage) if usage is not None else (EMPTY_USAGE,) * len(node.devices)
        return cls(
            node=node, usage=taken, score=node_score(node.devices, taken), room=_room(node, taken)
        )

    def may_fit(self, containers: tuple[ContainerRequests, ...]) -> bool:
        """False only when no placement can exist (a necessary condition, never a sufficient one)."""
        known = self._memo.get(containers)
        if known is None:
            known = self._memo[containers] = self._may_fit(containers)
        return known

    def _may_fit(self, containers: tuple[ContainerRequests, ...]) -> bool:
        for requests in containers:
            for request in requests:
                room = self.room.get(request.vendor)
                if room is None or not room.may_take(request):
                    return False
        return True


def _room(node: Node, usage: Sequence[DeviceUsage]) -> Mapping[str, VendorRoom]:
    rooms: dict[str, list[Room]] = {}
    mig: set[str] = set()
    loose: set[str] = set()
    for device, taken in zip(node.devices, usage, strict=True):
        found = rooms.setdefault(device.vendor, [])
        if device.health and taken.used < device.count:
            found.append(
                Room(
                    memory=device.memory - taken.usedmem,
                    cores=device.cores - taken.usedcores,
                    idle=taken.used == 0,
                    total_memory=device.memory,
                    total_cores=device.cores,
                )
            )
        if device.mode == "mig":
            mig.add(device.vendor)
        if getattr(device, "rough_summary", False):
            loose.add(device.vendor)
    return MappingProxyType(
        {
            v: VendorRoom(
                devices=tuple(found),
                mig=v in mig,
                loose=v in loose,
                memory=tuple(sorted((r.memory for r in found), reverse=True)),
                cores=tuple(sorted((r.cores for r in found), reverse=True)),
            )
            for v, found in rooms.items()
        }
    )


class ClusterView:
    """Node states by name plus their ranking by (score, name). Never mutated in place."""

    __slots__ = ("_order", "_states")

    def __init__(self, states: Mapping[str, NodeState], order: list[tuple[float, str]]) -> None:
        self._states = states
        self._order = order

    @classmethod
    def of(cls, states: Iterable[NodeState]) -> ClusterView:
        by_name = {s.node.name: s for s in states}
        return cls(by_name, sorted((s.score, name) for name, s in by_name.items()))

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, name: object) -> bool:
        return name in self._states

    def get(self, name: str) -> NodeState | None:
        return self._states.get(name)

    def states(self) -> Iterator[NodeState]:
        return iter(self._states.values())

    def missing(self, names: frozenset[str]) -> frozenset[str]:
        """The names this view does not know."""
        return names.difference(self._states)

    def ranked(
        self, highest_first: bool, among: frozenset[str] | None = None
    ) -> Iterator[NodeState]:
        """Node states best first; ``among`` restricts to candidate names."""
        if among is not None:
            if len(among) * 4 < len(self._states):
                order = sorted((self._states[n].score, n) for n in among if n in self._states)
                walk = reversed(order) if highest_first else iter(order)
                return (self._states[n] for _, n in walk)
            walk = reversed(self._order) if highest_first else iter(self._order)
            return (self._states[n] for _, n in walk if n in among)
        walk = reversed(self._order) if highest_first else iter(self._order)
        return (self._states[n] for _, n in walk)

    def with_state(self, state: NodeState) -> ClusterView:
        """A new view in which one node's state is replaced (or added)."""
        name = state.node.name
        order = list(self._order)
        old = self._states.get(name)
        if old is not None:
            del order[bisect.bisect_left(order, (old.score, name))]
        bisect.insort(order, (state.score, name))
        states = dict(self._states)
        states[name] = state
        return ClusterView(states, order)

    def with_usage(self, name: str, usage: Sequence[DeviceUsage]) -> ClusterView:
        state = self._states[name]
        return self.with_state(NodeState.of(state.node, usage))
