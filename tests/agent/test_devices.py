"""Pure device logic: replica IDs, the registration annotation, preferred allocations."""

from __future__ import annotations

from dataclasses import replace

from hami.agent import devices as d
from hami.agent.config.settings import NodeConfig
from hami.agent.discovery.fake import load_inventory
from hami.agent.values import Gpu
from hami.api.annotations import decode_node_devices, encode_node_devices
from hami.api.types import MigPlacement, MigProfile
from tests.agent.builders import A100, A100_UUIDS, NODE
from tests.builders import container_device as dev

GPUS = load_inventory(A100, NODE).gpus


def test_replicas_per_gpu_follow_split_count() -> None:
    listed = d.kubelet_devices(GPUS, {}, NodeConfig(split_count=3))
    assert [x.id for x in listed[:3]] == [f"{A100_UUIDS[0]}-{i}" for i in range(3)]
    assert len(listed) == 12 and all(x.healthy and x.numa is None for x in listed)


def test_numa_hint_only_when_enabled_and_health_per_gpu() -> None:
    health = {A100_UUIDS[2]: False}
    listed = d.kubelet_devices(GPUS, health, NodeConfig(split_count=2, enable_numa_topology=True))
    assert [x.numa for x in listed] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [x.healthy for x in listed] == [True] * 4 + [False] * 2 + [True] * 2


def test_registration_matches_hami_json() -> None:
    infos = d.registration(GPUS[:2], {A100_UUIDS[1]: False}, NodeConfig())
    assert encode_node_devices(infos) == (
        f'[{{"id":"{A100_UUIDS[0]}","count":10,"devmem":40960,"devcore":100,'
        '"type":"NVIDIA A100-SXM4-40GB","mode":"hami-core","health":true},'
        f'{{"id":"{A100_UUIDS[1]}","index":1,"count":10,"devmem":40960,"devcore":100,'
        '"type":"NVIDIA A100-SXM4-40GB","mode":"hami-core"}]'
    )
    assert decode_node_devices(encode_node_devices(infos)) == infos


def test_registration_scaling_and_model_prefix() -> None:
    gpu = Gpu("GPU-t4", 0, "Tesla T4", 15360, numa=1)
    (info,) = d.registration(
        [gpu], {}, NodeConfig(memory_scaling=1.5, core_scaling=2, split_count=4)
    )
    assert (info.devmem, info.devcore, info.count, info.type, info.numa) == (
        23040,
        200,
        4,
        "NVIDIA-Tesla T4",
        1,
    )


def test_unified_memory_gpu_needs_preconfigured_memory() -> None:
    gb10 = Gpu("GPU-gb10", 0, "NVIDIA GB10", 0)
    assert d.managed([gb10], NodeConfig()) == ()
    config = NodeConfig(preconfigured_memory=98304)
    assert d.managed([gb10], config) == (gb10,)
    assert d.registration([gb10], {}, config)[0].devmem == 98304


def test_filtered_gpus_are_not_managed() -> None:
    config = NodeConfig(filter_uuids=frozenset({A100_UUIDS[0]}), filter_indexes=frozenset({3}))
    assert [g.uuid for g in d.managed(GPUS, config)] == A100_UUIDS[1:3]


def test_mig_mode_registers_profiles_and_skips_gpus_without() -> None:
    profiles = (
        MigProfile("1g.5gb", 4864, 14, 1, tuple(MigPlacement(i, 1) for i in range(7))),
        MigProfile("7g.40gb", 40192, 100, 7, (MigPlacement(0, 8),)),
    )
    mig = Gpu("GPU-mig", 0, "NVIDIA A100-SXM4-40GB", 40960, mig_profiles=profiles)
    config = NodeConfig(operating_mode="mig", memory_scaling=2)
    without = replace(GPUS[1], mig_profiles=())  # e.g. a T4
    assert d.managed([mig, without], config) == (mig,)
    (info,) = d.registration([mig], {}, config)
    assert (info.count, info.devmem, info.devcore, info.mode) == (7, 40960, 100, "mig")
    assert info.mig_profiles == profiles


def test_physical_id_rules() -> None:
    owners = d.replica_owner(GPUS[:1], NodeConfig(split_count=2))
    assert d.physical_id(f"{A100_UUIDS[0]}-1", owners) == A100_UUIDS[0]
    full = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
    assert d.physical_id(f"{full}-7", {}) == full
    assert d.physical_id(f"{full}::3", {}) == full
    assert d.physical_id("GPU-short-3", {}) == "GPU-short-3"


def test_preferred_maps_annotated_gpus_to_replicas() -> None:
    config = NodeConfig(split_count=2)
    owners = d.replica_owner(GPUS, config)
    available = [x.id for x in d.kubelet_devices(GPUS, {}, config)]
    wanted = (dev(A100_UUIDS[3]), dev(A100_UUIDS[1]))
    chosen = d.preferred_replicas(wanted, available, (), 2, owners)
    assert chosen == [f"{A100_UUIDS[3]}-0", f"{A100_UUIDS[1]}-0"]


def test_preferred_honours_must_include_and_fills_up() -> None:
    config = NodeConfig(split_count=2)
    owners = d.replica_owner(GPUS, config)
    available = [x.id for x in d.kubelet_devices(GPUS, {}, config)]
    must = (f"{A100_UUIDS[1]}-1",)
    chosen = d.preferred_replicas((dev(A100_UUIDS[1]),), available, must, 2, owners)
    assert chosen == [must[0], available[0]]
    assert d.preferred_replicas(None, available, (), 3, owners) == available[:3]
