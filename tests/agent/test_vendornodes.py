"""Simulate mode for any vendor: Node manifests parsed with the vendor objects, played against
the in-memory Kubernetes fake (registration, handshake answers, post-bind bookkeeping)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hami.agent.errors import ConfigError
from hami.agent.simulation.simulator import SIM_POD_PHASES, SimNode, Simulator, check_plan
from hami.agent.simulation.vendornodes import ManifestPlayer, app_vendors, lock_keys, reported
from hami.api import keys
from hami.api.annotations import encode_node_lock, encode_pod_devices
from hami.api.types import ContainerDevice, NodeLock
from hami.config import load_config
from hami.core.vendor import Vendor
from hami.k8s.api import NODES, error_for
from hami.k8s.manifests import BASE_CAPACITY, ManifestNode, load_manifest, load_manifests
from hami.vendors import registry
from tests.agent.builders import REPO
from tests.agent.fake_kube import FakeKube

VENDORS = REPO / "examples" / "vendors"
NOW = datetime(2026, 8, 21, 6, 20, 40, 123456, tzinfo=UTC)
DCU_REGISTER = "DCU-0,4,16368,100,DCU-Z100L,0,true,0,hami-core:DCU-1,4,16368,100,DCU-Z100L,0,false,1,hami-core:"
ASCEND = "Ascend910B2"


@pytest.fixture(scope="module")
def vendors() -> dict[str, Vendor]:
    return registry.build(load_config(VENDORS / "config.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nodes.yaml"
    path.write_text(text)
    return path


HYGON = f"""
apiVersion: v1
kind: Node
metadata:
  name: dcu-1
  labels: {{zone: a}}
  annotations:
    hami.io/node-dcu-register: '{DCU_REGISTER}'
"""
CAMBRICON = """
kind: Node
metadata: {name: mlu-1}
status:
  capacity: {cambricon.com/vmlu: "200", cambricon.com/mlu.smlu.vcore: 200,
             cambricon.com/mlu.smlu.vmemory: "128"}
"""


# --- parsing -----------------------------------------------------------------------------------


def test_the_example_cluster_parses_with_every_vendor(vendors: dict[str, Vendor]) -> None:
    nodes = load_manifests([VENDORS / "cluster.yaml"], vendors)
    assert len(nodes) >= 12
    by_name = {n.name: n for n in nodes}
    assert by_name["ascend-910b2"].handshakes == (f"hami.io/node-handshake-{ASCEND}",)
    assert by_name["cambricon-mlu"].handshakes == ()
    assert {v for n in nodes for v in n.vendors} >= {"NVIDIA", ASCEND, "MLU", "DCU"}


def test_annotation_registration_gets_its_count_resource(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    (node,) = load_manifest(write(tmp_path, HYGON), vendors)
    assert node.vendors == ("DCU",)
    assert node.handshakes == (keys.HYGON_HANDSHAKE,)
    assert node.labels == {"zone": "a"}
    # capacity: every device's task count; allocatable: the healthy ones' (DCU-1 is unhealthy)
    assert node.capacity == {**BASE_CAPACITY, "hygon.com/dcunum": "8"}
    assert node.allocatable == {**BASE_CAPACITY, "hygon.com/dcunum": "4"}


def test_capacity_registration_is_kept_as_written(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    (node,) = load_manifest(write(tmp_path, CAMBRICON), vendors)
    assert node.vendors == ("MLU",) and node.handshakes == ()
    assert node.capacity["cambricon.com/mlu.smlu.vcore"] == "200"
    assert node.allocatable == node.capacity
    assert node.capacity["pods"] == "110"


def test_pods_and_lists_are_read(tmp_path: Path, vendors: dict[str, Vendor]) -> None:
    text = (
        "kind: List\nitems:\n- {kind: Node, metadata: {name: mlu-2}, status: {capacity: "
        "{cambricon.com/vmlu: '100', cambricon.com/mlu.smlu.vcore: '100', "
        "cambricon.com/mlu.smlu.vmemory: '64'}}}\n---\n"
        "kind: Pod\nmetadata: {name: placed}\nspec: {nodeName: mlu-2}\n"
    )
    assert [n.name for n in load_manifest(write(tmp_path, text), vendors)] == ["mlu-2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "not valid YAML"),
        ("- 1\n", "document 1: expected a Kubernetes object"),
        ("kind: Service\nmetadata: {name: s}\n", "Node s: kind: 'Service' is not supported"),
        ("kind: Node\nmetadata: {}\n", "document 1: metadata.name: a Node needs a name"),
        ("kind: Node\nmetadata: {name: n, labels: [a]}\n", "Node n: metadata.labels: expected a"),
        (
            "kind: Node\nmetadata: {name: n, annotations: {a: 1}}\n",
            "Node n: metadata.annotations.a: must be a string",
        ),
        (
            "kind: Node\nmetadata: {name: n}\nstatus: {capacity: {x/y: lots}}\n",
            "Node n: status.capacity.x/y: 'lots' is not a Kubernetes quantity",
        ),
        (
            "kind: Node\nmetadata: {name: n, annotations: {hami.io/node-dcu-register: 'x,y'}}\n",
            "Node n: hami.io/node-dcu-register",
        ),
        ("kind: Node\nmetadata: {name: n}\n", "Node n: registers no device of an enabled vendor"),
    ],
)
def test_bad_manifests_name_file_node_and_field(
    tmp_path: Path, vendors: dict[str, Vendor], text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="^" + str(path).replace(".", r"\.")) as info:
        load_manifest(path, vendors)
    assert message in str(info.value)


def test_a_missing_file_and_a_repeated_node_are_errors(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_manifest(tmp_path / "absent.yaml", vendors)
    path = write(tmp_path, HYGON)
    with pytest.raises(ConfigError, match="Node dcu-1: defined more than once"):
        load_manifests([path, path], vendors)


def test_a_vendor_outside_the_config_is_an_error(tmp_path: Path) -> None:
    nvidia_only = registry.build(load_config(None))
    with pytest.raises(ConfigError, match=r"enabled: NVIDIA; vendor sections come from"):
        load_manifest(write(tmp_path, HYGON), nvidia_only)


def test_check_plan() -> None:
    with pytest.raises(ConfigError, match=r"--nodes .* or --node-manifests"):
        check_plan([], [])
    check_plan([], ["dcu-1"])
    with pytest.raises(ConfigError, match="node a is both in --nodes and in --node-manifests"):
        check_plan([SimNode("a", Path("x.yaml"))], ["a"])


# --- registration and handshake ------------------------------------------------------------


def player(
    kube: FakeKube, nodes: list[ManifestNode], vendors: Mapping[str, Vendor]
) -> ManifestPlayer:
    return ManifestPlayer(kube, nodes, vendors, pod_phases=SIM_POD_PHASES, clock=lambda: NOW)


async def test_a_missing_node_is_created_with_its_registration(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    nodes = load_manifest(write(tmp_path, HYGON), vendors)
    assert await player(kube, nodes, vendors).sync_all() == 1
    node = kube.nodes["dcu-1"]
    meta = node["metadata"]
    assert meta["labels"] == {"kubernetes.io/hostname": "dcu-1", "type": "kwok", "zone": "a"}
    assert meta["annotations"] == {
        "kwok.x-k8s.io/node": "fake",
        "hami.io/node-dcu-register": DCU_REGISTER,
        keys.HYGON_HANDSHAKE: "Reported 2026-08-21 06:20:40.123456 +0000 UTC",
    }
    assert node["status"]["allocatable"]["hygon.com/dcunum"] == "4"


async def test_an_existing_node_is_patched_once_then_only_answers(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    kube.add_node("dcu-1", {"other": "kept"})
    nodes = load_manifest(write(tmp_path, HYGON), vendors)
    play = player(kube, nodes, vendors)
    assert await play.sync_all() == 1
    assert kube.calls == ["get_node", "patch_node", "patch_node_status"]
    notes = kube.node_annotations("dcu-1")
    assert notes["other"] == "kept" and notes[keys.HYGON_HANDSHAKE] == reported(NOW)
    assert kube.nodes["dcu-1"]["metadata"]["labels"]["zone"] == "a"
    assert kube.nodes["dcu-1"]["status"]["capacity"]["hygon.com/dcunum"] == "8"
    kube.calls.clear()
    assert await play.sync_all() == 0  # nothing changed: one GET
    assert kube.calls == ["get_node"]
    # the scheduler asks (Requesting_…), then cleans the registration up: both are answered
    await kube.patch_node(
        "dcu-1",
        {
            "metadata": {
                "annotations": {
                    keys.HYGON_HANDSHAKE: "Requesting_2026-08-21 06:21:00",
                    "hami.io/node-dcu-register": None,
                }
            }
        },
    )
    kube.calls.clear()
    assert await play.sync_all() == 1
    assert kube.calls == ["get_node", "patch_node"]
    notes = kube.node_annotations("dcu-1")
    assert notes[keys.HYGON_HANDSHAKE].startswith("Reported ")
    assert notes["hami.io/node-dcu-register"] == DCU_REGISTER


async def test_a_recreated_node_gets_labels_and_status_again(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    nodes = load_manifest(write(tmp_path, CAMBRICON), vendors)
    play = player(kube, nodes, vendors)
    await play.sync_all()
    kube.store.remove(NODES, "mlu-1")
    kube.add_node("mlu-1")  # a new uid, no status
    kube.nodes["mlu-1"]["metadata"]["uid"] = "uid-new"
    await play.sync_all()
    assert kube.nodes["mlu-1"]["status"]["capacity"]["cambricon.com/vmlu"] == "200"


async def test_one_failing_node_does_not_stop_the_others(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    path = write(tmp_path, HYGON + "---\n" + CAMBRICON)
    play = player(kube, load_manifest(path, vendors), vendors)
    kube.fail["create_node"] = error_for(403, "forbidden")
    assert await play.sync_all() == 0
    del kube.fail["create_node"]
    assert await play.sync_all() == 2


# --- after bind ----------------------------------------------------------------------------


def dcu(uuid: str) -> ContainerDevice:
    return ContainerDevice(uuid=uuid, type="DCU", usedmem=4000, usedcores=30)


def bound(
    name: str,
    node: str,
    annotations: Mapping[str, str],
    *,
    init: int = 0,
    bind_phase: str = keys.BIND_PHASE_ALLOCATING,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "demo",
            "annotations": {
                keys.VGPU_NODE: node,
                keys.BIND_TIME: "1755757240",
                keys.BIND_PHASE: bind_phase,
                **annotations,
            },
        },
        "spec": {
            "nodeName": node,
            "initContainers": [{"name": f"init-{i}"} for i in range(init)],
            "containers": [{"name": "app"}],
        },
        "status": {"phase": "Pending"},
    }


def lock(name: str | None) -> str:
    owner = {"namespace": "demo", "name": name} if name else {}
    return encode_node_lock(NodeLock(time=NOW, **owner))


async def test_post_bind_marks_success_and_releases_the_vendor_lock(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    nodes = load_manifest(write(tmp_path, HYGON), vendors)
    kube.add_node("dcu-1", {keys.NODE_LOCK: lock("dcu")})
    allocated = encode_pod_devices([[dcu("DCU-0")]])
    kube.add_pod(bound("dcu", "dcu-1", {keys.HYGON_ALLOCATED: allocated}))
    sim = Simulator(
        kube, [], lambda name: pytest.fail("no NVIDIA node"), manifests=player(kube, nodes, vendors)
    )
    assert await sim.step() == 1
    assert kube.pod_annotations("demo", "dcu")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert keys.NODE_LOCK not in kube.node_annotations("dcu-1")
    assert await sim.step() == 0  # handled once


async def test_post_bind_keeps_a_lock_held_by_another_pod(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    play = player(kube, load_manifest(write(tmp_path, HYGON), vendors), vendors)
    kube.add_node("dcu-1", {keys.NODE_LOCK: lock("other")})
    allocated = encode_pod_devices([[dcu("DCU-0")]])
    kube.add_pod(bound("dcu", "dcu-1", {keys.HYGON_ALLOCATED: allocated}))
    (pod,) = await kube.list_pods()
    assert play.waiting(pod)
    await play.admit(pod)
    assert kube.node_annotations("dcu-1")[keys.NODE_LOCK] == lock("other")


def test_which_pods_wait(tmp_path: Path, vendors: dict[str, Vendor]) -> None:
    from hami.k8s.views import PodInfo

    play = player(FakeKube(), load_manifest(write(tmp_path, HYGON), vendors), vendors)
    assert play.waiting(PodInfo.from_json(bound("p", "dcu-1", {})))
    assert not play.waiting(PodInfo.from_json(bound("p", "elsewhere", {})))
    done = bound("p", "dcu-1", {}, bind_phase=keys.BIND_PHASE_SUCCESS)
    assert not play.waiting(PodInfo.from_json(done))


def test_lock_keys_come_from_the_vendor_objects(vendors: dict[str, Vendor]) -> None:
    assert lock_keys(vendors, ["DCU", ASCEND, "NVIDIA"]) == (keys.NODE_LOCK,)
    assert lock_keys(vendors, ["MLU", "DCU"]) == (keys.NODE_LOCK, keys.CAMBRICON_LOCK)  # key order
    assert lock_keys(vendors, ["Mthreads", "kunlun", "unknown"]) == ()


def test_only_regular_containers_count_for_locks(vendors: dict[str, Vendor]) -> None:
    from hami.k8s.views import PodInfo

    only_init = encode_pod_devices([[dcu("DCU-0")], []])
    pod = PodInfo.from_json(bound("p", "dcu-1", {keys.HYGON_ALLOCATED: only_init}, init=1))
    assert pod.init_count == 1 and app_vendors(vendors, pod) == []
    app = encode_pod_devices([[], [dcu("DCU-0")]])
    pod = PodInfo.from_json(bound("p", "dcu-1", {keys.HYGON_ALLOCATED: app}, init=1))
    assert app_vendors(vendors, pod) == ["DCU"]
    broken = PodInfo.from_json(bound("p", "dcu-1", {keys.HYGON_ALLOCATED: "x"}))
    assert app_vendors(vendors, broken) == []


async def test_cambricon_bare_time_lock_is_released(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    play = player(kube, load_manifest(write(tmp_path, CAMBRICON), vendors), vendors)
    kube.add_node("mlu-1", {keys.CAMBRICON_LOCK: lock(None)})
    device = ContainerDevice(uuid="mlu-1-0", type="MLU", usedmem=2048, usedcores=50)
    allocated = encode_pod_devices([[device]])
    kube.add_pod(bound("mlu", "mlu-1", {keys.CAMBRICON_ALLOCATED: allocated}))
    (pod,) = await kube.list_pods()
    await play.admit(pod)
    assert keys.CAMBRICON_LOCK not in kube.node_annotations("mlu-1")


async def test_the_watch_admits_manifest_pods_and_retries_after_a_failure(
    tmp_path: Path, vendors: dict[str, Vendor]
) -> None:
    kube = FakeKube()
    nodes = load_manifest(write(tmp_path, HYGON), vendors)
    kube.add_node("dcu-1", {keys.NODE_LOCK: lock("dcu")})
    sim = Simulator(
        kube, [], lambda name: pytest.fail("no NVIDIA node"), manifests=player(kube, nodes, vendors)
    )
    allocated = encode_pod_devices([[dcu("DCU-0")]])
    kube.add_pod(bound("dcu", "dcu-1", {keys.HYGON_ALLOCATED: allocated}))
    (event,) = kube.pod_log
    kube.fail["patch_pod"] = error_for(500, "etcd is slow")
    task = sim.on_event(event)
    assert task is not None
    await task
    assert "uid-dcu" not in sim._handled  # failed: left for the re-list
    del kube.fail["patch_pod"]
    assert await sim.step() == 1
    assert kube.pod_annotations("demo", "dcu")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert keys.NODE_LOCK not in kube.node_annotations("dcu-1")
