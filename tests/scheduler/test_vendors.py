"""Every vendor in the services: handshakes per vendor, AMD's cleanup, vendor node locks at bind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from hami.api import annotations as codec
from hami.api import keys
from hami.config import load_config
from hami.core.vendor import MUTEX_LOCK, NodeLockSpec, lock_specs
from hami.k8s import objects
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import node_manifest
from hami.scheduler.cache import ClusterCache, HandshakeWrite
from hami.scheduler.registration import HandshakeSpec, handshake_specs
from hami.vendors import registry

from .harness import T0, FakeClock, container, gpu_node, gpu_pod, running

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "vendors"
CONFIG = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(CONFIG)
STAMP = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
CAMBRICON = NodeLockSpec(keys.CAMBRICON_LOCK, expiry=120.0, owner=False)
DCU_REGISTER = "DCU-0,4,16368,100,DCU-Z100L,0,true,0,hami-core:"
AMD_REGISTER = (
    '[{"id":"amd-0","count":4,"devmem":196608,"devcore":304,'
    '"type":"AMD-Instinct-MI300X","health":true}]'
)


def test_handshake_specs_come_from_the_vendors() -> None:
    specs = {s.vendor: s for s in handshake_specs(VENDORS)}
    assert specs["NVIDIA"] == HandshakeSpec("NVIDIA", keys.NVIDIA_HANDSHAKE, "nvidia.com/gpu")
    assert specs["DCU"] == HandshakeSpec("DCU", "hami.io/node-handshake-dcu", "hygon.com/dcunum")
    assert specs["XPU"].key == "hami.io/node-handshake-xpu"
    assert specs["XPU"].count_resource == "kunlunxin.com/vxpu"
    assert specs["Biren"].key == "hami.io/node-handshake-biren"
    assert specs["Vastai"].key == "hami.io/node-handshake-va"
    assert specs["Ascend910B2"].key == "hami.io/node-handshake-Ascend910B2"
    assert specs["Ascend910B2"].count_resource == "huawei.com/Ascend910B2"
    assert specs["BI-V100"].key == "hami.io/node-handshake-BI-V100"
    assert specs["AMD"] == HandshakeSpec(
        "AMD", "", "amd.com/gpu", cleanup_key="hami.io/node-amd-register"
    )
    for capacity_vendor in (
        "MLU",
        "Mthreads",
        "Metax-GPU",
        "GCU",
        "kunlun",
        "Metax-SGPU",
        "AWSNeuron",
    ):
        assert capacity_vendor not in specs


def _cache() -> ClusterCache:
    return ClusterCache(VENDORS, handshake_specs(VENDORS), clock=FakeClock())


def test_hygon_node_gets_its_own_handshake_key() -> None:
    cache = _cache()
    node = node_manifest("dcu", {keys.HYGON_REGISTER: DCU_REGISTER}, {"hygon.com/dcunum": "4"})
    cache.apply_node("ADDED", node)
    requesting = codec.encode_handshake_requesting(T0)
    assert cache.take_actions() == [HandshakeWrite("dcu", "hami.io/node-handshake-dcu", requesting)]
    assert "dcu" in cache.view


def test_amd_node_without_gpus_is_cleaned_by_removing_its_registration() -> None:
    cache = _cache()
    node = node_manifest("amd", {keys.AMD_REGISTER: AMD_REGISTER}, {"amd.com/gpu": "1"})
    cache.apply_node("ADDED", node)
    assert cache.take_actions() == []  # no handshake key to write
    assert "amd" in cache.view
    node["status"] = {"allocatable": {"amd.com/gpu": "0"}}
    cache.apply_node("MODIFIED", node)
    assert cache.take_actions() == [HandshakeWrite("amd", keys.AMD_REGISTER, None)]
    assert "amd" not in cache.view


def test_amd_node_never_advertising_gpus_is_not_used_nor_cleaned() -> None:
    cache = _cache()
    cache.apply_node("ADDED", node_manifest("amd", {keys.AMD_REGISTER: AMD_REGISTER}))
    assert cache.take_actions() == []
    assert "amd" not in cache.view


def test_lock_specs_are_distinct_and_in_sorted_vendor_order() -> None:
    assert lock_specs(VENDORS, {"NVIDIA", "MLU", "DCU"}) == (MUTEX_LOCK, CAMBRICON)
    assert lock_specs(VENDORS, {"NVIDIA", "MLU"}) == (CAMBRICON, MUTEX_LOCK)
    assert lock_specs(VENDORS, {"Mthreads", "GCU", "kunlun", "Metax-GPU", "AWSNeuron"}) == ()
    assert lock_specs(VENDORS, {"AMD", "Biren", "XPU"}) == (MUTEX_LOCK,)


def mixed_node() -> dict[str, object]:
    node = gpu_node("n1")
    mlu = {
        "cambricon.com/vmlu": "200",
        "cambricon.com/mlu.smlu.vcore": "200",
        "cambricon.com/mlu.smlu.vmemory": "128",
    }
    status: dict[str, Any] = node["status"]
    status["capacity"] = {**status["capacity"], **mlu}
    status["allocatable"] = {**status["allocatable"], **mlu}
    return node


def mixed_pod(name: str) -> dict[str, Any]:
    mlu = {
        "name": "mlu",
        "resources": {"limits": {"cambricon.com/vmlu": "1", "cambricon.com/mlu.smlu.vmemory": "8"}},
    }
    return gpu_pod(name, container(gpu=1, gpumem=1000), mlu)


def node_annotations(h: Any) -> dict[str, str]:
    return objects.annotations(h.kube.stored(NODES, "n1"))


async def test_mixed_pod_takes_the_cambricon_lock_and_the_mutex() -> None:
    async with running(config=CONFIG) as h:
        await h.add_node(mixed_node())
        await h.add_pod(mixed_pod("p"))
        await h.settle()
        assert await h.schedule("p") == "n1"
        annotations = h.annotations("p")
        assert annotations[keys.NVIDIA_ALLOCATED].count(";") == 2  # one entry per container
        assert annotations[keys.CAMBRICON_ALLOCATED].count(";") == 2
        locks = node_annotations(h)
        assert locks[keys.NODE_LOCK].endswith(",default,p")
        assert locks[keys.CAMBRICON_LOCK] == STAMP  # a bare RFC3339 time, no owner


async def test_a_fresh_cambricon_lock_fails_the_bind_and_releases_the_mutex() -> None:
    async with running(config=CONFIG, bind_lock_wait=0.05) as h:
        await h.add_node(mixed_node())
        await h.add_pod(mixed_pod("p"))
        await h.settle()
        assert (await h.filter("p"))["NodeNames"] == ["n1"]
        stamp = (T0 - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
        await h.kube.merge_patch(
            NODES, "n1", {"metadata": {"annotations": {keys.CAMBRICON_LOCK: stamp}}}
        )
        await h.settle()
        result = await h.bind("p", "n1")
        assert "node lock contention" in result["Error"]
        assert keys.NODE_LOCK not in node_annotations(h)  # taken first, then released
        assert node_annotations(h)[keys.CAMBRICON_LOCK] == stamp  # not ours: left alone
        assert objects.spec(h.kube.stored(PODS, "p", "default")).get("nodeName") is None


async def test_an_expired_cambricon_lock_is_taken_over() -> None:
    async with running(config=CONFIG) as h:
        await h.add_node(mixed_node())
        await h.add_pod(mixed_pod("p"))
        await h.settle()
        assert (await h.filter("p"))["NodeNames"] == ["n1"]
        stamp = (T0 - timedelta(seconds=121)).strftime("%Y-%m-%dT%H:%M:%SZ")
        await h.kube.merge_patch(
            NODES, "n1", {"metadata": {"annotations": {keys.CAMBRICON_LOCK: stamp}}}
        )
        await h.settle()
        assert (await h.bind("p", "n1")) == {"Error": ""}
        assert node_annotations(h)[keys.CAMBRICON_LOCK] == STAMP


async def test_malformed_vendor_registration_names_vendor_node_and_field() -> None:
    async with running(config=CONFIG) as h:
        broken = node_manifest("dcu-broken", {keys.HYGON_REGISTER: "DCU-0,4,lots,100,Z100,0,true:"})
        await h.add_node(broken)
        await h.settle()
        [event] = await h.events("RegistrationInvalid")
        assert event["involvedObject"]["name"] == "dcu-broken"
        message = str(event["message"])
        assert message.startswith("node skipped, its registration is malformed: DCU registration ")
        assert keys.HYGON_REGISTER in message and "'lots'" in message
