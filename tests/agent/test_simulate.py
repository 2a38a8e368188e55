"""Simulate mode with the in-memory Kubernetes fake: many nodes, kubelet's Allocate calls."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hami.agent.config.settings import Settings
from hami.agent.discovery.fake import derived_uuid
from hami.agent.errors import ConfigError
from hami.agent.simulation.simulator import (
    SimNode,
    Simulator,
    gpu_count,
    parse_nodes,
    pending_containers,
)
from hami.api import keys
from hami.api.annotations import decode_node_devices
from hami.k8s.api import error_for
from hami.k8s.views import PodEvent, PodInfo
from tests.agent.builders import A100, A100_UUIDS, INVENTORIES, bound_pod, locked_node
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.builders import container_device as dev

GENERIC = INVENTORIES / "kwok-generic.yaml"


def test_parse_nodes() -> None:
    assert parse_nodes(["a=x.yaml,b", "c"], Path("d.yaml")) == [
        SimNode("a", Path("x.yaml")),
        SimNode("b", Path("d.yaml")),
        SimNode("c", Path("d.yaml")),
    ]
    with pytest.raises(ConfigError, match="--inventory"):
        parse_nodes(["a"], None)
    assert parse_nodes([""], None) == []  # nothing to simulate: see check_plan


def test_gpu_count() -> None:
    assert gpu_count({"nvidia.com/gpu": "2"}, "nvidia.com/gpu") == 2
    assert gpu_count({"nvidia.com/gpu": "lots"}, "nvidia.com/gpu") == 0
    assert gpu_count({}, "nvidia.com/gpu") == 0


def make(tmp_path: Path, kube: FakeKube, nodes: list[SimNode]) -> Simulator:
    def settings_for(name: str) -> Settings:
        return replace(make_settings(tmp_path), node_name=name, prepare_host=False)

    return Simulator(kube, nodes, settings_for)


async def test_registers_every_node_with_its_own_uuids(tmp_path: Path) -> None:
    kube = FakeKube()
    for name in ("kwok-a", "kwok-b"):
        kube.add_node(name)
    sim = make(tmp_path, kube, [SimNode("kwok-a", GENERIC), SimNode("kwok-b", GENERIC)])
    for agent in sim.agents.values():
        await agent.annotator.sync()
    a = decode_node_devices(kube.node_annotations("kwok-a")[keys.NVIDIA_REGISTER])
    b = decode_node_devices(kube.node_annotations("kwok-b")[keys.NVIDIA_REGISTER])
    assert [d.id for d in a] == [derived_uuid("kwok-a", 0), derived_uuid("kwok-a", 1)]
    assert {d.id for d in a}.isdisjoint(d.id for d in b)
    status = kube.nodes["kwok-a"]["status"]
    assert status["capacity"]["nvidia.com/gpu"] == status["allocatable"]["nvidia.com/gpu"] == "20"


async def test_plays_kubelet_for_bound_pods(tmp_path: Path) -> None:
    kube = FakeKube()
    entries = [[], [dev(A100_UUIDS[0])], [dev(A100_UUIDS[1]), dev(A100_UUIDS[2])]]
    pod = bound_pod(
        "p",
        entries,
        init=["init"],
        containers=["a", "b"],
        phase="Running",
        gpus={"a": 1, "b": 2},
    )
    kube.add_pod(pod)
    locked_node(kube, pod, "gpu-node-1")
    kube.add_pod(bound_pod("elsewhere", [[dev("GPU-x")]], node="not-simulated", gpus={"main": 1}))
    sim = make(tmp_path, kube, [SimNode("gpu-node-1", A100)])
    kube.calls.clear()
    assert await sim.step() == 1
    # the listed pod is checked against the lock once, then one write per container and the
    # lock release
    assert kube.calls == [
        "list_pods",
        "get_node",
        "patch_pod",
        "patch_pod",
        "get_node",
        "patch_node",
    ]
    notes = kube.pod_annotations("default", "p")
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert notes[keys.NVIDIA_TO_ALLOCATE] == ";;;"
    assert await sim.step() == 0  # handled once
    assert kube.pod_annotations("default", "elsewhere")[keys.BIND_PHASE] == "allocating"


async def test_failed_allocation_is_recorded_on_the_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    # the scheduler assigned one GPU but the container asks kubelet for two
    pod = bound_pod("p", [[dev(A100_UUIDS[0])]], gpus={"main": 2})
    kube.add_pod(pod)
    locked_node(kube, pod, "gpu-node-1")
    sim = make(tmp_path, kube, [SimNode("gpu-node-1", A100)])
    await sim.step()
    assert kube.pod_annotations("default", "p")[keys.BIND_PHASE] == keys.BIND_PHASE_FAILED
    (event,) = kube.events
    assert "device number not matched" in event.message


def test_pending_containers_skip_what_was_allocated() -> None:
    u0, u1, u2 = A100_UUIDS[:3]
    body = bound_pod(
        "p",
        [[dev(u0)], [], [dev(u1), dev(u2)]],
        init=["init"],
        containers=["cpu", "gpu"],
        gpus={"init": 1, "gpu": 2},
    )
    pod = PodInfo.from_json(body)
    assert pending_containers(pod, keys.NVIDIA_GPU) == [("init", 1), ("gpu", 2)]
    notes = body["metadata"]["annotations"]
    notes[keys.NVIDIA_TO_ALLOCATE] = f";;{u1},NVIDIA,3000,30:{u2},NVIDIA,3000,30:;"
    assert pending_containers(PodInfo.from_json(body), keys.NVIDIA_GPU) == [("gpu", 2)]
    notes[keys.NVIDIA_TO_ALLOCATE] = ";;;"
    assert pending_containers(PodInfo.from_json(body), keys.NVIDIA_GPU) == []
    notes[keys.NVIDIA_TO_ALLOCATE] = "junk,NVIDIA,lots,1:;"  # Allocate reports it
    assert pending_containers(PodInfo.from_json(body), keys.NVIDIA_GPU) == [("init", 1), ("gpu", 2)]


async def test_a_restarted_simulator_never_touches_allocated_pods(tmp_path: Path) -> None:
    """SIGKILL + restart in the middle of a burst: the new process sees pods in every state
    (kwok made the allocated ones Running). It allocates what is left and nothing else."""
    u0, u1, u2 = A100_UUIDS[:3]
    kube = FakeKube()
    for name in ("done-pending", "done-running"):
        phase = "Running" if name.endswith("running") else "Pending"
        body = bound_pod(
            name, [[dev(u0)]], phase=phase, bind_phase=keys.BIND_PHASE_SUCCESS, gpus={"main": 1}
        )
        body["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = ";"
        kube.add_pod(body)
    half = bound_pod("half", [[dev(u1)], [dev(u2)]], containers=["a", "b"], gpus={"a": 1, "b": 1})
    half["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = f";{u2},NVIDIA,3000,30:;"
    kube.add_pod(half)
    locked_node(kube, half, "gpu-node-1")  # killed between its two containers: lock kept
    fresh = bound_pod("fresh", [[dev(u0)]], gpus={"main": 1}, node="gpu-node-2")
    kube.add_pod(fresh)
    locked_node(kube, fresh, "gpu-node-2")
    sim = make(tmp_path, kube, [SimNode("gpu-node-1", A100), SimNode("gpu-node-2", A100)])
    assert await sim.step() == 2  # half and fresh; the allocated pods are not admitted
    phases = {n: kube.pod_annotations(ns, n)[keys.BIND_PHASE] for ns, n in kube.pods}
    assert phases == dict.fromkeys(("done-pending", "done-running", "half", "fresh"), "success")
    assert kube.pod_annotations("default", "half")[keys.NVIDIA_TO_ALLOCATE] == ";;"
    assert not kube.events
    # and the watch path decides the same way
    for (_, name), body in kube.pods.items():
        assert sim.on_event(PodEvent("ADDED", PodInfo.from_json(body))) is None, name


async def test_an_api_outage_during_allocate_is_retried_not_given_up(tmp_path: Path) -> None:
    """A connection error (status 0) while allocating is not an allocation failure: the pod
    stays waiting and the next re-list allocates it (chaos: API-server restart)."""
    kube = FakeKube()
    pod = bound_pod("p", [[dev(A100_UUIDS[0])]], gpus={"main": 1})
    kube.add_pod(pod)
    locked_node(kube, pod, "gpu-node-1")
    sim = make(tmp_path, kube, [SimNode("gpu-node-1", A100)])
    kube.fail["patch_pod"] = error_for(0, "connection: All connection attempts failed")
    await sim.step()
    assert kube.pod_annotations("default", "p")[keys.BIND_PHASE] == "allocating"
    del kube.fail["patch_pod"]
    assert await sim.step() == 1  # retried
    assert kube.pod_annotations("default", "p")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
