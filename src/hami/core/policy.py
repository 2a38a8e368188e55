"""Scoring and ordering policies (wire-format.md §3.7, §3.11), as data plus one ordering routine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hami.api.types import ScoringWeights
from hami.core.model import ContainerRequests, Device, DeviceUsage

BINPACK = "binpack"
SPREAD = "spread"
TOPOLOGY_AWARE = "topology-aware"
MUTEX = "mutex"
NUMA = "numa"


def parse_gpu_policy(value: str) -> tuple[str, ...]:
    """A GPU policy value (``binpack``, ``mutex,spread`` …) as its tokens, in written order."""
    tokens = tuple(t.strip() for t in value.split(",") if t.strip())  # wire-ok: policy tokens
    return tokens or (SPREAD,)


def device_score(
    device: Device, usage: DeviceUsage, requests: ContainerRequests, weights: ScoringWeights
) -> float:
    """10 × (w_slot·slots + w_core·cores + w_mem·memory utilisation), the request included.

    HAMi counts the request only when the device type string equals the vendor key (§9.5); we
    count it whenever the request is for this device's vendor.
    """
    if device.count == 0 or device.cores == 0 or device.memory == 0:
        return 0.0
    req = core = mem = 0
    for request in requests:
        if request.vendor == device.vendor:
            req += 1
            core += request.coresreq
            mem += request.memory_on(device)
    return 10.0 * (
        weights.slot * (req + usage.used) / device.count
        + weights.core * (core + usage.usedcores) / device.cores
        + weights.memory * (mem + usage.usedmem) / device.memory
    )


_KeyPart = Callable[[float, Device, DeviceUsage], float]

_CHAIN_KEYS: dict[str, _KeyPart] = {
    BINPACK: lambda score, _d, _u: score,
    SPREAD: lambda score, _d, _u: -score,
    NUMA: lambda _s, device, _u: float(device.numa),
}


def _single_key(policy: str, numa_bind: bool) -> _KeyPart | Callable[..., tuple[float, float]]:
    if numa_bind:
        if policy == BINPACK:
            return lambda s, d, _u: (-float(d.numa), s)
        return lambda s, d, _u: (float(d.numa), -s)
    if policy == BINPACK:
        return lambda s, d, _u: (s, float(d.numa))
    if policy == MUTEX:
        return lambda _s, d, u: (-float(u.used), float(d.numa))
    return lambda s, d, _u: (-s, float(d.numa))


def try_order(
    positions: Sequence[int],
    devices: Sequence[Device],
    usage: Sequence[DeviceUsage],
    scores: Sequence[float],
    policy: Sequence[str],
    numa_bind: bool,
) -> list[int]:
    """Device positions in the order a fit tries them (best first).

    HAMi sorts ascending by a "less" relation and tries devices from the end; a stable sort and a
    reversal reproduce that, including the tie rule (the last registered device is tried first).
    """
    if len(policy) == 1 and policy[0] != NUMA:
        key = _single_key(policy[0], numa_bind)
        ordered = sorted(positions, key=lambda p: key(scores[p], devices[p], usage[p]))
        ordered.reverse()
        return ordered
    chain: list[str] = []
    for token in policy:
        if token in _CHAIN_KEYS and token not in chain:
            chain.append(token)
    if not chain:
        chain = [SPREAD]
    if numa_bind and NUMA in chain:
        chain.remove(NUMA)
        chain.insert(0, NUMA)
    parts = [_CHAIN_KEYS[token] for token in chain]
    ordered = sorted(
        positions,
        key=lambda p: (
            *(part(scores[p], devices[p], usage[p]) for part in parts),
            float(devices[p].index),
        ),
    )
    ordered.reverse()
    return ordered


def node_score(devices: Sequence[Device], usage: Sequence[DeviceUsage]) -> float:
    """The default node score: 10 × (slots + cores + memory utilisation) over all devices.

    Computed from existing usage only (the incoming pod does not count), so the node ranking is
    independent of the pod being placed — the scheduler's index relies on this.
    """
    count = cores = memory = used = usedcores = usedmem = 0
    for device, taken in zip(devices, usage, strict=True):
        count += device.count
        cores += device.cores
        memory += device.memory
        used += taken.used
        usedcores += taken.usedcores
        usedmem += taken.usedmem
    if count == 0 or cores == 0 or memory == 0:
        return 0.0
    return 10.0 * (used / count + usedcores / cores + usedmem / memory)


def node_preference(policy: str) -> int:
    """+1 when the highest node score wins (binpack), -1 when the lowest wins (spread)."""
    return -1 if policy == SPREAD else 1
