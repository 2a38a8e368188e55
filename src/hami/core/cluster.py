"""An immutable view of the cluster's devices and usage, indexed by node score.

The default node score depends on existing usage only, so nodes can be kept ranked ahead of
time: a decision walks them best first and stops at the first that fits, rejecting hopeless
nodes from a per-vendor summary without a full fit.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from hami.core.model import EMPTY_USAGE, ContainerRequests, DeviceUsage, Node
from hami.core.policy import node_score


@dataclass(frozen=True, slots=True)
class VendorRoom:
    """What the devices of one vendor on a node still offer, best first.

    ``memory[k-1]`` is the k-th largest free memory among devices with a free slot, so a request
    for k devices of m MiB can only fit when ``memory[k-1] >= m`` (likewise for cores).
    """

    memory: tuple[int, ...]
    cores: tuple[int, ...]
    mig: bool  # a MIG GPU can host several instances: the device count is no bound

    def may_take(self, nums: int, memreq: int, coresreq: int) -> bool:
        if self.mig:
            return bool(self.memory) and self.memory[0] >= memreq
        if len(self.memory) < nums:
            return False
        return self.memory[nums - 1] >= memreq and self.cores[nums - 1] >= min(coresreq, 100)


@dataclass(frozen=True, slots=True)
class NodeState:
    node: Node
    usage: tuple[DeviceUsage, ...]
    score: float
    room: Mapping[str, VendorRoom]

    @classmethod
    def of(cls, node: Node, usage: Sequence[DeviceUsage] | None = None) -> NodeState:
        taken = tuple(usage) if usage is not None else (EMPTY_USAGE,) * len(node.devices)
        return cls(
            node=node, usage=taken, score=node_score(node.devices, taken), room=_room(node, taken)
        )

    def may_fit(self, containers: Iterable[ContainerRequests]) -> bool:
        """False only when no placement can exist (a necessary condition, never a sufficient one)."""
        for requests in containers:
            for request in requests:
                room = self.room.get(request.vendor)
                if room is None or not room.may_take(
                    request.nums, request.memreq, request.coresreq
                ):
                    return False
        return True


def _room(node: Node, usage: Sequence[DeviceUsage]) -> Mapping[str, VendorRoom]:
    memory: dict[str, list[int]] = {}
    cores: dict[str, list[int]] = {}
    mig: set[str] = set()
    for device, taken in zip(node.devices, usage, strict=True):
        memory.setdefault(device.vendor, [])
        cores.setdefault(device.vendor, [])
        if device.health and taken.used < device.count:
            memory[device.vendor].append(device.memory - taken.usedmem)
            cores[device.vendor].append(device.cores - taken.usedcores)
        if device.mode == "mig":
            mig.add(device.vendor)
    return MappingProxyType(
        {
            v: VendorRoom(
                memory=tuple(sorted(memory[v], reverse=True)),
                cores=tuple(sorted(cores[v], reverse=True)),
                mig=v in mig,
            )
            for v in memory
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
