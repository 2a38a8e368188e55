"""Small builders for core tests: devices, nodes, pods in HAMi's test-harness shape (§8)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from hami.core.cluster import ClusterView, NodeState
from hami.core.config import NvidiaConfig, SchedulerConfig
from hami.core.decide import Decision, decide
from hami.core.model import Device, DeviceUsage, Node, PodRequest
from hami.core.request import parse_pod
from hami.core.vendor import QuotaRoom, Vendor
from hami.vendors.nvidia import NvidiaVendor
from tests import builders as shared

# HAMi's scheduler tests use hami.io/* resource names (§8 preamble).
TEST_NVIDIA = NvidiaConfig(
    resource_count_name="hami.io/gpu",
    resource_memory_name="hami.io/gpumem",
    resource_memory_percentage_name="hami.io/gpumem-percentage",
    resource_core_name="hami.io/gpucores",
)


def config(gpu_policy: str = "spread", node_policy: str = "binpack") -> SchedulerConfig:
    return SchedulerConfig(
        nvidia=TEST_NVIDIA, gpu_scheduler_policy=gpu_policy, node_scheduler_policy=node_policy
    )


def vendors(cfg: SchedulerConfig | None = None) -> dict[str, Vendor]:
    return {"NVIDIA": NvidiaVendor((cfg or config()).nvidia)}


def dev(
    uuid: str,
    index: int = 0,
    *,
    type: str = "NVIDIA",
    count: int = 10,
    memory: int = 8000,
    cores: int = 100,
    numa: int = 0,
    health: bool = True,
    **extra: object,
) -> Device:
    return Device(
        uuid=uuid,
        vendor="NVIDIA",
        type=type,
        count=count,
        memory=memory,
        cores=cores,
        index=index,
        numa=numa,
        health=health,
        **extra,  # type: ignore[arg-type]
    )


def node(name: str, *devices: Device, cordoned: Iterable[str] = ()) -> Node:
    return Node(name=name, devices=tuple(devices), cordoned=frozenset(cordoned))


def used(slots: int = 0, mem: int = 0, cores: int = 0) -> DeviceUsage:
    return DeviceUsage(used=slots, usedmem=mem, usedcores=cores)


def state(n: Node, *usage: DeviceUsage) -> NodeState:
    return NodeState.of(n, usage or None)


def view(*states: NodeState) -> ClusterView:
    return ClusterView.of(states)


def container(
    name: str = "c",
    /,
    gpu: int | None = 1,
    mem: int | None = None,
    cores: int | None = None,
    **more: object,
) -> dict[str, object]:
    named: dict[str, object] = {"gpu": gpu, "gpumem": mem, "gpucores": cores}
    limits = {f"hami.io/{key}": value for key, value in named.items() if value is not None}
    limits.update({f"hami.io/{key.replace('_', '-')}": value for key, value in more.items()})
    return shared.container(name, limits)


def pod_manifest(
    *containers: Mapping[str, object],
    init: Sequence[Mapping[str, object]] = (),
    annotations: Mapping[str, str] | None = None,
    name: str = "p",
    namespace: str = "default",
) -> dict[str, object]:
    notes = dict(annotations or {})
    return shared.pod(name, *containers, namespace=namespace, annotations=notes, init=init)


def pod(
    *containers: Mapping[str, object],
    cfg: SchedulerConfig | None = None,
    admit: bool = False,
    **kw: object,
) -> PodRequest:
    manifest = pod_manifest(*containers, **kw)  # type: ignore[arg-type]
    return parse_pod(manifest, vendors(cfg), cfg or config(), admit=admit)


def schedule(
    p: PodRequest,
    v: ClusterView,
    cfg: SchedulerConfig | None = None,
    quota: Mapping[str, QuotaRoom] | None = None,
) -> Decision:
    return decide(p, v, vendors(cfg), quota=quota)


def chosen(d: Decision) -> list[list[str]]:
    """UUIDs per container of a placed decision (NVIDIA)."""
    assert d.fit is not None, d.failed_nodes()
    return [[x.uuid for x in c] for c in d.fit.devices("NVIDIA")]
