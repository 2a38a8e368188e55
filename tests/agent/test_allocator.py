"""The Allocate flow against the in-memory Kubernetes fake (wire-format.md §5.4–§5.5)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hami.agent.allocation.allocator import (
    Allocator,
    HostPrep,
    PreferredRequest,
    awaits_allocate,
)
from hami.agent.config.settings import Settings
from hami.agent.errors import AllocationError, PodNotFound
from hami.api import keys
from hami.api.annotations import decode_pod_devices, encode_mig_allocations
from hami.api.types import MigAllocation, MigPlacement
from hami.k8s.api import error_for
from hami.k8s.views import Json, PodInfo
from tests.agent.builders import A100_UUIDS, NODE, a100_source, bound_pod, install_hook, locked_node
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.builders import container_device as dev

U0, U1, U2, U3 = A100_UUIDS


def make(tmp_path: Path, kube: FakeKube, **node: object) -> Allocator:
    settings = install_hook(make_settings(tmp_path, **node))
    source = a100_source()
    ids = iter(f"cache{i}" for i in range(100))
    return Allocator(kube, settings, source.gpus, host=HostPrep(True), new_id=lambda: next(ids))


def ids(uuid: str, n: int = 1) -> list[str]:
    return [f"{uuid}-{i}" for i in range(n)]


async def test_allocate_one_container_via_the_lock(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("gpu-pod", [[dev(U0, 3000, 30)]], containers=["cuda"])
    kube.add_pod(pod)
    locked_node(kube, pod)
    (result,) = await make(tmp_path, kube).allocate([ids(U0)])
    assert result.envs["NVIDIA_VISIBLE_DEVICES"] == U0
    assert result.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "3000m"
    assert result.envs["CUDA_DEVICE_SM_LIMIT"] == "30"
    assert result.envs["CUDA_DEVICE_MEMORY_SHARED_CACHE"].endswith("/vgpu/cache0.cache")
    notes = kube.pod_annotations("default", "gpu-pod")
    assert notes[keys.NVIDIA_TO_ALLOCATE] == ";"  # no growing-';' bug
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert notes[keys.NVIDIA_ALLOCATED] == f"{U0},NVIDIA,3000,30:;"  # untouched
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)
    cache_dir = tmp_path / "hook" / "vgpu" / "containers" / "uid-gpu-pod_cuda"
    assert cache_dir.is_dir() and (cache_dir.stat().st_mode & 0o7777) == 0o1777  # sticky
    assert (tmp_path / "vgpulock").is_dir()
    assert not kube.events


async def test_two_containers_each_get_their_own_entry(tmp_path: Path) -> None:
    kube = FakeKube()
    entries = [[], [dev(U0, 1000, 10)], [dev(U1, 2000, 20), dev(U2, 2000, 20)]]
    pod = bound_pod("two", entries, init=["setup"], containers=["a", "b"])
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube)
    (first,) = await alloc.allocate([ids(U0)])
    assert first.envs["NVIDIA_VISIBLE_DEVICES"] == U0
    assert first.mounts[0].host_path.endswith("/containers/uid-two_a")
    notes = kube.pod_annotations("default", "two")
    assert decode_pod_devices(notes[keys.NVIDIA_TO_ALLOCATE]) == (
        (),
        (),
        (dev(U1, 2000, 20), dev(U2, 2000, 20)),
    )
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_ALLOCATING  # one container still waits
    assert keys.NODE_LOCK in kube.node_annotations(NODE)
    (second,) = await alloc.allocate([[f"{U1}-3", f"{U2}-5"]])
    assert second.envs["NVIDIA_VISIBLE_DEVICES"] == f"{U1},{U2}"
    assert second.envs["CUDA_DEVICE_MEMORY_LIMIT_1"] == "2000m"
    assert second.mounts[0].host_path.endswith("/containers/uid-two_b")
    notes = kube.pod_annotations("default", "two")
    assert notes[keys.NVIDIA_TO_ALLOCATE] == ";;;"
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)


async def test_one_call_for_two_containers(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)], [dev(U1)]], containers=["a", "b"])
    kube.add_pod(pod)
    locked_node(kube, pod)
    results = await make(tmp_path, kube).allocate([ids(U0), ids(U1)])
    assert [r.envs["NVIDIA_VISIBLE_DEVICES"] for r in results] == [U0, U1]
    assert kube.pod_annotations("default", "p")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS


@pytest.mark.security
async def test_without_lock_no_pod_is_answered(tmp_path: Path) -> None:
    """Issue 17: a pod placed by nodeName with hand-written annotations (and the oldest
    bind-time, "1") got what it wrote, or hijacked a later Allocate that found no lock owner."""
    kube = FakeKube()
    kube.add_node(NODE)
    forged = bound_pod("forged", [[dev(U0, 999999, 100)]])
    forged["metadata"]["annotations"][keys.BIND_TIME] = "1"
    kube.add_pod(forged)
    kube.add_pod(bound_pod("older", [[dev(U1)]]))
    alloc = make(tmp_path, kube)
    with pytest.raises(PodNotFound, match="named by the node lock"):
        await alloc.allocate([ids(U0)])
    with pytest.raises(PodNotFound, match="named by the node lock"):
        await alloc.allocate([ids(U0)], PodInfo.from_json(forged))  # the hint proves nothing
    for name in ("forged", "older"):  # nothing answered, nothing written
        notes = kube.pod_annotations("default", name)
        assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_ALLOCATING
    assert await alloc.preferred([PreferredRequest(("a", "b"), (), 1)]) == [["a"]]


@pytest.mark.security
async def test_a_forged_pod_cannot_take_the_lock_owners_answer(tmp_path: Path) -> None:
    kube = FakeKube()
    legit = bound_pod("legit", [[dev(U1, 2000, 20)]])
    kube.add_pod(legit)
    locked_node(kube, legit)
    forged = bound_pod("forged", [[dev(U0, 999999, 100)]])
    forged["metadata"]["annotations"][keys.BIND_TIME] = "1"
    kube.add_pod(forged)
    alloc = make(tmp_path, kube)
    with pytest.raises(PodNotFound, match="is not the pod the node lock"):
        await alloc.allocate([ids(U0)], PodInfo.from_json(forged))
    (result,) = await alloc.allocate([ids(U1)])  # kubelet's call: the lock owner's entry
    assert result.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "2000m"
    assert kube.pod_annotations("default", "forged")[keys.NVIDIA_TO_ALLOCATE].startswith(U0)


async def test_lock_owner_on_another_node_is_not_answered(tmp_path: Path) -> None:
    kube = FakeKube()
    stranger = bound_pod("stranger", [[dev(U0)]], node="other-node")
    kube.add_pod(stranger)
    locked_node(kube, stranger)
    kube.add_pod(bound_pod("mine", [[dev(U0)]]))
    with pytest.raises(PodNotFound):
        await make(tmp_path, kube).find_pod()


async def test_no_pod_is_a_clear_error_with_a_node_event(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    with pytest.raises(PodNotFound, match=f"no pod waiting for GPU allocation on node {NODE}"):
        await make(tmp_path, kube).allocate([ids(U0)])
    (event,) = kube.events
    assert (event.kind, event.name, event.reason) == ("Node", NODE, "GPUAllocateFailed")


async def assert_failed(kube: FakeKube, pod: str, why: str) -> None:
    notes = kube.pod_annotations("default", pod)
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_FAILED
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)
    (event,) = kube.events
    assert (event.kind, event.name, event.type) == ("Pod", pod, "Warning")
    assert why in event.message


async def test_device_count_mismatch_fails_the_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0), dev(U1)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    with pytest.raises(
        AllocationError,
        match=r"pod default/p: device number not matched.*2 GPU\(s\), kubelet asked for 1",
    ):
        await make(tmp_path, kube).allocate([ids(U0)])
    await assert_failed(kube, "p", "device number not matched")


async def test_malformed_annotation_fails_the_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    pod["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = f"{U0},NVIDIA,lots,30:;"
    kube.add_pod(pod)
    locked_node(kube, pod)
    with pytest.raises(AllocationError, match="memory 'lots' is not an integer"):
        await make(tmp_path, kube).allocate([ids(U0)])
    await assert_failed(kube, "p", keys.NVIDIA_TO_ALLOCATE)


async def test_no_entry_left_fails_the_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    with pytest.raises(AllocationError, match="no container entry left"):
        await make(tmp_path, kube).allocate([ids(U0), ids(U1)])
    await assert_failed(kube, "p", "no container entry left")


async def test_write_back_failure_fails_the_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube)
    original = kube.patch_pod
    calls = 0

    async def flaky(namespace: str, name: str, patch: Json) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error_for(500, "etcd is on fire")
        await original(namespace, name, patch)

    kube.patch_pod = flaky  # type: ignore[method-assign]
    with pytest.raises(AllocationError, match="etcd is on fire"):
        await alloc.allocate([ids(U0)])
    await assert_failed(kube, "p", "etcd is on fire")


async def test_preferred_allocation_uses_kubelet_chosen_gpus(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0, 100, 5)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube, preferred_allocation=True)
    chosen = await alloc.preferred([PreferredRequest(tuple(ids(U1, 3) + ids(U0, 3)), (), 1)])
    assert chosen == [[f"{U0}-0"]]
    (result,) = await alloc.allocate([[f"{U3}-2"]])  # kubelet may still choose otherwise
    assert result.envs["NVIDIA_VISIBLE_DEVICES"] == U3
    assert result.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "100m"


async def test_preferred_without_a_pod_still_answers(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    chosen = await make(tmp_path, kube).preferred([PreferredRequest(("a", "b", "c"), ("c",), 2)])
    assert chosen == [["c", "a"]]


async def test_mig_mode_uses_realised_mig_uuids(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("m", [[dev(U0, 9984, 29)]])
    reservation = MigAllocation(0, 0, U0, "2g.10gb", MigPlacement(2, 2), "MIG-abc", 4, 0)
    pod["metadata"]["annotations"][keys.MIG_ALLOCATIONS] = encode_mig_allocations([reservation])
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube, operating_mode="mig")
    (result,) = await alloc.allocate([ids(U0)])
    assert result.envs == {"NVIDIA_VISIBLE_DEVICES": "MIG-abc"} and result.mounts == ()


async def test_mig_mode_without_realised_instances_fails_clearly(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("m", [[dev(U0, 9984, 29)]])
    reservation = MigAllocation(0, 0, U0, "2g.10gb", MigPlacement(2, 2))
    pod["metadata"]["annotations"][keys.MIG_ALLOCATIONS] = encode_mig_allocations([reservation])
    kube.add_pod(pod)
    locked_node(kube, pod)
    with pytest.raises(AllocationError, match="not realised"):
        await make(tmp_path, kube, operating_mode="mig").allocate([ids(U0)])
    await assert_failed(kube, "m", "not realised")


async def test_release_lock_only_for_its_owner() -> None:
    kube = FakeKube()
    mine = PodInfo.from_json(bound_pod("mine", [[dev(U0)]]))
    other = bound_pod("other", [[dev(U0)]])
    locked_node(kube, other)
    await kube.release_node_lock(NODE, mine)
    assert keys.NODE_LOCK in kube.node_annotations(NODE)
    await kube.release_node_lock(NODE, PodInfo.from_json(other))
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)


async def test_legacy_bare_timestamp_lock_is_released() -> None:
    kube = FakeKube()
    kube.add_node(NODE, {keys.NODE_LOCK: "2026-08-21T06:20:40Z"})
    await kube.release_node_lock(NODE, PodInfo.from_json(bound_pod("p", [[dev(U0)]])))
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)


async def test_host_preparation_can_be_switched_off(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    settings: Settings = replace(make_settings(tmp_path), prepare_host=False)
    alloc = Allocator(kube, settings, a100_source().gpus)
    await alloc.allocate([ids(U0)])
    assert not (tmp_path / "hook").exists()


async def test_allocate_via_the_lock_makes_four_api_calls(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("gpu-pod", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    kube.calls.clear()
    await make(tmp_path, kube).allocate([ids(U0)])
    # the node read that found the lock owner also guards the lock release
    assert kube.calls == ["get_node", "get_pod", "patch_pod", "patch_node"]
    notes = kube.pod_annotations("default", "gpu-pod")
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert notes[keys.NVIDIA_TO_ALLOCATE] == ";"
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)


async def test_a_hinted_pod_is_not_read_again(tmp_path: Path) -> None:
    kube = FakeKube()
    entries = [[dev(U0, 1000, 10)], [dev(U1, 2000, 20)]]
    pod = bound_pod("two", entries, containers=["a", "b"])
    kube.add_pod(pod)
    locked_node(kube, pod)
    hint = PodInfo.from_json(pod)
    alloc = make(tmp_path, kube)
    kube.calls.clear()
    (chosen,) = await alloc.preferred([PreferredRequest(tuple(ids(U0, 3)), (), 1)], hint)
    (first,) = await alloc.allocate([chosen], hint)
    # the first call checks the hint against the lock; the last container is not allocated
    # yet: lock kept
    assert kube.calls == ["get_node", "patch_pod"]
    assert keys.NODE_LOCK in kube.node_annotations(NODE)
    assert kube.pod_annotations("default", "two")[keys.BIND_PHASE] == keys.BIND_PHASE_ALLOCATING
    # the stale hint is overlaid with our own write: the second call pops the second entry
    (chosen,) = await alloc.preferred([PreferredRequest(tuple(ids(U1, 3)), (), 1)], hint)
    (second,) = await alloc.allocate([chosen], hint)
    assert first.envs["NVIDIA_VISIBLE_DEVICES"] == U0
    assert second.envs["NVIDIA_VISIBLE_DEVICES"] == U1
    assert kube.calls == ["get_node", "patch_pod", "patch_pod", "get_node", "patch_node"]
    notes = kube.pod_annotations("default", "two")
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert notes[keys.NVIDIA_TO_ALLOCATE] == ";;"
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)


async def test_a_hint_that_does_not_wait_here_falls_back_to_the_api(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    elsewhere = PodInfo.from_json(bound_pod("x", [[dev(U1)]], node="other-node"))
    (result,) = await make(tmp_path, kube).allocate([ids(U0)], elsewhere)
    assert result.envs["NVIDIA_VISIBLE_DEVICES"] == U0
    assert kube.pod_annotations("default", "p")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS


async def test_release_with_a_stale_node_read_retries_at_once() -> None:
    kube = FakeKube()
    pod = bound_pod("mine", [[dev(U0)]])
    locked_node(kube, pod)
    stale = await kube.get_node(NODE)
    await kube.patch_node(NODE, {"metadata": {"annotations": {"other": "x"}}})
    kube.calls.clear()
    await kube.release_node_lock(NODE, PodInfo.from_json(pod), stale)
    assert kube.calls == ["patch_node", "get_node", "patch_node"]
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)


# --- HAMi-core files (isolation never degrades silently) -------------------------------------


@pytest.mark.parametrize("name", ["libvgpu.so", "ld.so.preload"])
@pytest.mark.parametrize("broken", ["missing", "directory"])
async def test_a_broken_hami_core_file_fails_the_pod_naming_it(
    tmp_path: Path, name: str, broken: str
) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube)
    path = tmp_path / "hook" / "vgpu" / name
    path.unlink()
    if broken == "directory":
        path.mkdir()  # what containerd creates for a missing bind source
    what = "is missing" if broken == "missing" else "is a directory"
    with pytest.raises(AllocationError, match=f"{path} {what}"):
        await alloc.allocate([ids(U0)])
    await assert_failed(kube, "p", f"{path} {what}")
    assert not (tmp_path / "hook" / "vgpu" / "containers").exists()  # nothing prepared


async def test_a_versioned_library_does_not_need_the_unversioned_one(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube)
    vgpu = tmp_path / "hook" / "vgpu"
    (vgpu / "libvgpu.so").rename(vgpu / f"libvgpu.so.{alloc.settings.plugin_version}")
    (result,) = await alloc.allocate([ids(U0)])
    mounts = {m.container_path: m.host_path for m in result.mounts}
    assert mounts[f"{vgpu}/libvgpu.so"] == str(vgpu / f"libvgpu.so.{alloc.settings.plugin_version}")


async def test_cuda_disable_control_does_not_need_ld_so_preload(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]], env={"main": {"CUDA_DISABLE_CONTROL": "true"}})
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube)
    (tmp_path / "hook" / "vgpu" / "ld.so.preload").unlink()
    (result,) = await alloc.allocate([ids(U0)])
    assert "/etc/ld.so.preload" not in {m.container_path for m in result.mounts}
    assert kube.pod_annotations("default", "p")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS


async def test_simulate_mode_needs_no_hami_core_files(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = bound_pod("p", [[dev(U0)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    settings: Settings = replace(make_settings(tmp_path), prepare_host=False)
    (result,) = await Allocator(kube, settings, a100_source().gpus).allocate([ids(U0)])
    assert "/etc/ld.so.preload" in {m.container_path for m in result.mounts}
    assert kube.pod_annotations("default", "p")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS


# --- allocated pods are left alone -------------------------------------------------------------


def test_awaits_allocate_needs_an_entry_left() -> None:
    def pod(phase: str, value: str) -> PodInfo:
        body = bound_pod("p", [[dev(U0)]], bind_phase=phase)
        body["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = value
        return PodInfo.from_json(body)

    waiting = f"{U0},NVIDIA,3000,30:;"
    pending = frozenset({"Pending"})
    assert awaits_allocate(pod(keys.BIND_PHASE_ALLOCATING, waiting), NODE, pending)
    # another vendor's plugin may have written success first: NVIDIA entries still wait
    assert awaits_allocate(pod(keys.BIND_PHASE_SUCCESS, waiting), NODE, pending)
    assert not awaits_allocate(pod(keys.BIND_PHASE_SUCCESS, ";"), NODE, pending)
    assert not awaits_allocate(pod(keys.BIND_PHASE_ALLOCATING, ";;"), NODE, pending)
    assert not awaits_allocate(pod(keys.BIND_PHASE_FAILED, waiting), NODE, pending)
    # an undecodable list still waits: Allocate then fails the pod saying why
    assert awaits_allocate(pod(keys.BIND_PHASE_ALLOCATING, "x,NVIDIA,lots,1:;"), NODE, pending)


async def test_an_allocated_pod_is_never_found_nor_failed(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    done = bound_pod("done", [[dev(U0)]], bind_phase=keys.BIND_PHASE_SUCCESS)
    done["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = ";"
    kube.add_pod(done)
    alloc = make(tmp_path, kube)
    with pytest.raises(PodNotFound):
        await alloc.allocate([ids(U0)], PodInfo.from_json(done))
    assert kube.pod_annotations("default", "done")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert [e.kind for e in kube.events] == ["Node"]  # the node says why; the pod is untouched


async def test_an_older_allocated_pod_does_not_shadow_a_waiting_one(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    done = bound_pod("done", [[dev(U0)]], bind_phase=keys.BIND_PHASE_SUCCESS)
    done["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = ";"
    kube.add_pod(done)
    newer = bound_pod("newer", [[dev(U1)]])
    newer["metadata"]["annotations"][keys.BIND_TIME] = "1755757299"
    kube.add_pod(newer)
    locked_node(kube, newer)
    (result,) = await make(tmp_path, kube).allocate([ids(U1)])
    assert result.envs["NVIDIA_VISIBLE_DEVICES"] == U1
    assert kube.pod_annotations("default", "done")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert kube.pod_annotations("default", "newer")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS


async def test_a_lock_left_by_an_allocated_pod_is_not_followed(tmp_path: Path) -> None:
    kube = FakeKube()
    done = bound_pod("done", [[dev(U0)]], bind_phase=keys.BIND_PHASE_SUCCESS)
    done["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = ";"
    kube.add_pod(done)
    locked_node(kube, done)
    kube.add_pod(bound_pod("waiting", [[dev(U1)]]))
    with pytest.raises(PodNotFound):  # nor is a pod the lock does not name answered
        await make(tmp_path, kube).find_pod()


async def test_a_restarted_plugin_releases_the_lock_of_an_allocated_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    done = bound_pod("done", [[dev(U0)]], bind_phase=keys.BIND_PHASE_SUCCESS)
    done["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = ";"
    kube.add_pod(done)
    locked_node(kube, done)
    assert await make(tmp_path, kube).release_finished_lock() is True
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)
    assert kube.pod_annotations("default", "done")[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS


async def test_a_restarted_plugin_keeps_the_lock_of_a_waiting_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    entries = [[dev(U0)], [dev(U1)]]
    pod = bound_pod("two", entries, containers=["a", "b"])
    kube.add_pod(pod)
    locked_node(kube, pod)
    alloc = make(tmp_path, kube)
    await alloc.allocate([ids(U0)])  # the first container only
    assert await alloc.release_finished_lock() is False
    assert keys.NODE_LOCK in kube.node_annotations(NODE)
    kube.add_node(NODE)  # no lock at all
    assert await alloc.release_finished_lock() is False
