"""The monitor: pod matching through the fake API, corrupt files, stale cleanup, metrics."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import MigAllocation, MigPlacement
from hami.cli import app
from hami.k8s.api import PODS, Unavailable
from hami.k8s.fake import FakeKube
from hami.monitor.collector import MonitorCollector, registry_for
from hami.monitor.host import HostGpu, NullHost, NvmlHost
from hami.monitor.main import create_app
from hami.monitor.monitor import HookPathError, Monitor, MonitorSettings
from tests import builders

from .regions import V0, V1, Slot, region_bytes, write_region

UUID = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
NOW = 1_800_000_000.0
Sample = tuple[str, dict[str, str], float]


class FakeHost:
    def read(self) -> list[HostGpu]:
        return [HostGpu(0, UUID, "A100-SXM4-40GB", 5 << 30, 42, 7)]


def pod(name: str, uid: str, *containers: str, node: str = "n1", **annotations: str) -> Any:
    return builders.pod(
        name,
        *(builders.container(c) for c in containers),
        namespace="team",
        uid=uid,
        annotations=annotations,
        node=node,
        init=[builders.container("setup")],
        typed=True,
    )


def samples(collector: MonitorCollector) -> list[Sample]:
    text = generate_latest(registry_for(collector)).decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def find(found: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in found if s[0] == name and labels.items() <= s[1].items()]


def one(found: list[Sample], name: str, **labels: str) -> float:
    matches = find(found, name, **labels)
    assert len(matches) == 1, (name, labels, matches)
    return matches[0][2]


@pytest.fixture
def hook(tmp_path: Path) -> Path:
    return tmp_path / "local"  # the hook prefix (regions under <prefix>/vgpu/containers)


def make(hook: Path, kube: FakeKube, **kw: Any) -> Monitor:
    return Monitor(MonitorSettings(node="n1", hook_path=hook, **kw), kube, clock=lambda: NOW)


def busy_region(**kw: Any) -> bytearray:
    slot = Slot(1, {0: (100, 0, 900, 0, 1000, 35)})
    return region_bytes([UUID], [4 << 30], [slot], last_kernel=int(NOW) - 12, **kw)


async def test_regions_are_matched_to_pods_and_containers(hook: Path) -> None:
    kube = FakeKube()
    mig = MigAllocation(1, 0, UUID, "1g.5gb", MigPlacement(0, 1), "MIG-x", 3, 0)
    await kube.create(
        PODS,
        pod("train", "u1", "main", **{keys.MIG_ALLOCATIONS: codec.encode_mig_allocations([mig])}),
    )
    await kube.create(PODS, pod("elsewhere", "u9", "main", node="n2"))
    write_region(hook / "vgpu" / "containers" / "u1_main", busy_region())
    write_region(hook / "vgpu" / "containers" / "u9_main", busy_region())  # another node's pod
    write_region(hook / "vgpu" / "containers" / "u1_ghost", busy_region())  # unknown container
    monitor = make(hook, kube, resync_interval=1e12)
    await monitor.refresh()
    found = samples(MonitorCollector(monitor, FakeHost(), clock=lambda: NOW))
    labels = {
        "namespace": "team",
        "pod": "train",
        "container": "main",
        "vdevice_index": "0",
        "device_uuid": UUID[:40],
        "zone": "vGPU",
    }
    assert one(found, "hami_vgpu_memory_used_bytes", **labels) == 1000
    assert one(found, "hami_container_device_memory_bytes", **labels) == 1000
    assert one(found, "hami_vgpu_memory_limit_bytes", **labels) == 4 << 30
    assert one(found, "hami_container_device_utilization_ratio", **labels) == 35
    assert one(found, "hami_container_last_kernel_elapsed_seconds", **labels) == 12
    assert one(found, "hami_vgpu_memory_context_bytes", **labels) == 100
    assert one(found, "hami_vgpu_memory_buffer_bytes", **labels) == 900
    assert one(found, "hami_vgpu_memory_module_bytes", **labels) == 0
    assert one(found, "hami_mig_device_info", mig_uuid="MIG-x", gpu_instance_id="3") == 1
    assert len(find(found, "hami_vgpu_memory_used_bytes")) == 1
    assert one(found, "hami_monitor_regions", matched="false") == 2
    host = {"node": "n1", "device_index": "0", "device_type": "NVIDIA-A100-SXM4-40GB"}
    assert one(found, "hami_host_gpu_memory_used_bytes", **host) == 5 << 30
    assert one(found, "hami_host_gpu_utilization_ratio", **host) == 42
    controller = find(found, "hami_host_gpu_memory_controller_utilization_ratio")
    assert controller[0][2] == 7 and "node" not in controller[0][1]
    assert "zone" not in find(found, "hami_build_info")[0][1]
    monitor.close()


async def test_legacy_names_and_v0_without_last_kernel(hook: Path) -> None:
    kube = FakeKube()
    await kube.create(PODS, pod("p", "u1", "main"))
    slot = Slot(1, {0: (10, 5, 80, 0, 100, 3)})
    write_region(
        hook / "vgpu" / "containers" / "u1_main",
        region_bytes([UUID], [1], [slot], layout=V0, extra=0),
    )
    monitor = make(hook, kube)
    await monitor.refresh()
    found = samples(MonitorCollector(monitor, FakeHost(), legacy=True))
    assert not find(found, "hami_container_last_kernel_elapsed_seconds")
    legacy = find(found, "Device_memory_desc_of_container")[0][1]
    assert (legacy["context"], legacy["module"], legacy["data"], legacy["offset"]) == (
        "10",
        "5",
        "80",
        "5",
    )
    assert one(found, "vGPU_device_memory_usage_in_bytes", podname="p", ctrname="main") == 100
    assert one(found, "HostGPUMemoryUsage", nodeid="n1", deviceidx="0") == 5 << 30
    assert one(found, "hami_vgpu_memory_used_bytes", pod="p") == 100  # new names stay


async def test_corrupt_and_foreign_files_are_reported_and_skipped(
    hook: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kube = FakeKube()
    await kube.create(PODS, pod("p", "u1", "a", "b", "c", "d"))
    root = hook / "vgpu" / "containers"
    write_region(root / "u1_a", b"\0" * 4096)  # no magic
    write_region(root / "u1_b", b"short")
    write_region(root / "u1_d", busy_region())
    for name in ("x.cache", "y.cache", "libvgpu.so"):
        write_region(root / "u1_c", busy_region(), name=name)
    (root / "u1_e").mkdir()  # no cache file yet: not an error
    (root / "not-a-container").mkdir()
    monitor = make(hook, kube)
    with caplog.at_level(logging.WARNING):
        await monitor.refresh()
        await monitor.refresh()
    found = samples(MonitorCollector(monitor, NullHost()))
    reasons = {s[1]["container"]: s[1]["reason"] for s in find(found, "hami_monitor_region_errors")}
    assert reasons == {"a": "bad_magic", "b": "too_small", "c": "ambiguous"}
    assert len(find(found, "hami_vgpu_memory_used_bytes")) == 1  # d still reported
    assert sum("skipping region" in r.message for r in caplog.records) == 3  # logged once each
    write_region(root / "u1_a", busy_region())  # repaired in place
    await monitor.refresh()
    assert (
        len(find(samples(MonitorCollector(monitor, NullHost())), "hami_vgpu_memory_used_bytes"))
        == 2
    )


async def test_stale_directories_of_deleted_pods_are_removed_after_the_grace(hook: Path) -> None:
    kube = FakeKube()
    await kube.create(PODS, pod("p", "live", "main"))
    root = hook / "vgpu" / "containers"
    live = write_region(root / "live_main", busy_region()).parent
    old = write_region(root / "gone_main", busy_region()).parent
    fresh = write_region(root / "new_main", busy_region()).parent
    os.utime(old, (NOW - 600, NOW - 600))
    os.utime(fresh, (NOW - 10, NOW - 10))
    os.utime(live, (NOW - 600, NOW - 600))
    monitor = make(hook, kube, resync_interval=300)
    kube.fail_next("list", Unavailable("down"))
    await monitor.refresh()  # the pod list failed: nothing is deleted
    assert old.exists() and monitor.kube_errors == 1
    await monitor.refresh()
    assert not old.exists() and fresh.exists() and live.exists()
    found = samples(MonitorCollector(monitor, NullHost()))
    assert one(found, "hami_monitor_stale_directories_removed_total") == 1
    assert one(found, "hami_monitor_kube_errors_total") == 1


async def test_feedback_blocks_lower_priority_and_switches_shared_devices(hook: Path) -> None:
    kube = FakeKube()
    await kube.create(PODS, pod("p", "u1", "hi", "lo"))
    root = hook / "vgpu" / "containers"
    hi = write_region(root / "u1_hi", busy_region(priority=0, recent_kernel=3, switch=0))
    lo = write_region(root / "u1_lo", busy_region(priority=1, recent_kernel=3, switch=0))
    monitor = make(hook, kube)
    await monitor.refresh()
    readings = {r.container: r.snapshot for r in monitor.containers()}
    assert (readings["hi"].recent_kernel, readings["hi"].utilization_switch) == (2, 0)
    assert (readings["lo"].recent_kernel, readings["lo"].utilization_switch) == (-1, 1)
    assert hi.exists() and lo.exists()
    monitor.close()


async def test_http_metrics_route(hook: Path) -> None:
    kube = FakeKube()
    monitor = make(hook, kube)
    await monitor.refresh()
    app = create_app(registry_for(MonitorCollector(monitor, NullHost())))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        text = (await client.get("/metrics")).text
        assert "hami_build_info{" in text and "hami_monitor_regions" in text
        assert (await client.get("/healthz")).status_code == 200


class FakeNvml:
    class NVMLError(Exception):
        pass

    class Memory:
        used = 123

    class Rates:
        gpu = 55
        memory = 9

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index == 1:
            raise self.NVMLError("gone")
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return b"GPU-1"

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Memory:
        return self.Memory()

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Rates:
        return self.Rates()


def test_nvml_host_reads_each_gpu_and_skips_failing_ones() -> None:
    gpus = NvmlHost(FakeNvml()).read()
    assert gpus == [HostGpu(0, "GPU-1", "NVIDIA H100", 123, 55, 9)]
    found = samples(
        MonitorCollector(Monitor(MonitorSettings("n"), FakeKube()), NvmlHost(FakeNvml()))
    )
    # HAMi prefixes "NVIDIA-" even when the name already starts with NVIDIA
    assert one(found, "hami_host_gpu_utilization_ratio", device_type="NVIDIA-NVIDIA H100") == 55


async def test_hook_path_is_the_device_plugins_prefix(hook: Path) -> None:
    kube = FakeKube()
    await kube.create(PODS, pod("train", "u1", "main"))
    write_region(hook / "vgpu" / "containers" / "u1_main", busy_region())
    monitor = make(hook, kube)
    assert monitor.settings.containers_dir == hook / "vgpu" / "containers"
    await monitor.refresh()
    assert monitor.tracked == 1
    assert MonitorSettings(node="n1").containers_dir == Path("/usr/local/vgpu/containers")


def test_old_hook_path_meaning_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "usr" / "local" / "vgpu"  # HAMi's monitor HOOK_PATH: <prefix>/vgpu
    (old / "containers").mkdir(parents=True)
    with pytest.raises(HookPathError, match=f"use {tmp_path / 'usr' / 'local'}$"):
        make(old, FakeKube())
    result = CliRunner().invoke(
        app, ["monitor", "--node-name", "n1", "--hook-path", str(old)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"hami monitor: hook path {old} is the vgpu directory itself;")
    assert "<prefix>/vgpu/containers" in line


def test_a_prefix_named_vgpu_is_not_the_old_meaning(tmp_path: Path) -> None:
    prefix = tmp_path / "vgpu"  # a prefix that happens to be called vgpu: it has vgpu/ inside
    (prefix / "vgpu" / "containers").mkdir(parents=True)
    (prefix / "containers").mkdir()
    assert make(prefix, FakeKube()).settings.containers_dir == prefix / "vgpu" / "containers"
    assert make(tmp_path / "nothing" / "vgpu", FakeKube()).tracked == 0  # not there yet: fine


@pytest.mark.parametrize(
    "size",
    [0, 4096, V1.procs + V1.slot // 2, V1.tail + 4],  # gone, header only, mid-slot, mid-tail
)
async def test_a_region_truncated_under_a_scrape_is_skipped_and_counted(
    hook: Path, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A container may truncate its own region file; the monitor never maps it, so a scrape
    (and the feedback writes) neither crash with SIGBUS nor grow the file back."""
    kube = FakeKube()
    await kube.create(PODS, pod("p", "u1", "a", "b"))
    root = hook / "vgpu" / "containers"
    path = write_region(root / "u1_a", busy_region())
    write_region(root / "u1_b", busy_region())
    monitor = make(hook, kube)
    await monitor.refresh()
    assert (
        len(find(samples(MonitorCollector(monitor, NullHost())), "hami_vgpu_memory_used_bytes"))
        == 2
    )
    os.truncate(path, size)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            found = samples(MonitorCollector(monitor, NullHost()))
            assert [s[1]["container"] for s in find(found, "hami_vgpu_memory_used_bytes")] == ["b"]
            errors = find(found, "hami_monitor_region_errors")
            assert [(s[1]["container"], s[1]["reason"]) for s in errors] == [("a", "truncated")]
    assert sum("truncated under the reader" in r.message for r in caplog.records) == 1
    monitor._feedback()  # what refresh writes: nothing to a truncated file
    assert path.stat().st_size == size
    await monitor.refresh()  # re-opened and judged as the file it has become (HAMi's rules)
    found = samples(MonitorCollector(monitor, NullHost()))
    reasons = [s[1]["reason"] for s in find(found, "hami_monitor_region_errors")]
    assert reasons == ([] if size >= V0.size else ["too_small" if size == 0 else "unknown_version"])
    assert path.stat().st_size == size
