"""The scheduler service against the real control plane: kube-apiserver (webhook registered by
URL, TLS with the cluster CA), kube-scheduler (the chart's profile `hami-scheduler` and extender:
`nodeCacheCapable`, ignored managed resources, TLS with the cluster CA), kwok nodes whose GPUs are played by
`hami device-plugin --simulate`.

The module starts its own cluster: the extender is top-level in a KubeSchedulerConfiguration,
so sharing the session cluster would route every GPU pod of other tests through it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hami.api import annotations as codec
from hami.api import keys
from hami.cluster import LocalCluster
from hami.cluster.pki import write_serving_cert
from hami.cluster.ports import free_port
from hami.demo import stack as demo_stack
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, NODES, PODS, Kind, KubeAPIError, Manifest
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from tests.e2e.localcluster import client_for, create_gpu_node, wait_until

pytestmark = pytest.mark.e2e

WEBHOOKS = Kind(
    "mutatingwebhookconfigurations",
    "apis/admissionregistration.k8s.io/v1",
    False,
    "MutatingWebhookConfiguration",
)
MAIN_NODES = ("hami-main-0", "hami-main-1")
REQUEUE_NODE = "hami-requeue"
LOAD_NODES = tuple(f"hami-load-{i:02d}" for i in range(20))
HAMI = [str(Path(sys.executable).with_name("hami"))]


@dataclass
class Stack:
    cluster: LocalCluster
    port: int
    run_dir: Path
    ca: Path
    scheduler: subprocess.Popen[bytes] | None = None
    plugin: subprocess.Popen[bytes] | None = None

    def start_scheduler(self) -> None:
        cert = write_serving_cert(self.cluster.pki.ca, self.run_dir, "hami-scheduler")  # type: ignore[union-attr]
        log = open(self.run_dir / "hami-scheduler.log", "ab")  # noqa: SIM115
        # /filter and /bind where kube-scheduler calls them, over mTLS (docs/security.md)
        extender = demo_stack.extender_access(self.cluster.run_dir)
        self.scheduler = subprocess.Popen(
            [
                *HAMI,
                "scheduler",
                "--kubeconfig",
                str(self.cluster.kubeconfig),
                "--http-bind",
                f"127.0.0.1:{self.port}",
                "--extender-bind",
                f"127.0.0.1:{extender.port}",
                "--client-ca-file",
                str(extender.client_ca),
                "--cert-file",
                str(cert.cert),
                "--key-file",
                str(cert.key),
                "--log-level",
                "INFO",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(
                    f"https://127.0.0.1:{self.port}/readyz",
                    verify=ssl.create_default_context(cafile=str(self.ca)),
                    timeout=1,
                )
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.scheduler.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, "hami scheduler not ready: " + self.log_tail()
            time.sleep(0.2)

    def stop_scheduler(self, sig: int = signal.SIGTERM) -> None:
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.send_signal(sig)
            self.scheduler.wait(15)
        self.scheduler = None

    def log_tail(self) -> str:
        path = self.run_dir / "hami-scheduler.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _inventory(directory: Path, gpus: int) -> Path:
    path = directory / f"inventory-{gpus}.yaml"
    items = "\n".join("  - {model: NVIDIA A10, memoryMiB: 23028, numa: 0}" for _ in range(gpus))
    path.write_text(f"gpus:\n{items}\n")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("hami-scheduler-e2e")
    port = free_port()
    # the chart's profile and extender (hami.demo.chart), TLS verified with the cluster CA
    options = demo_stack.cluster_options(
        run_dir / "cluster", "hami-scheduler-e2e", port, default_profile=False
    )
    cluster = LocalCluster(options).start()
    assert cluster.pki is not None
    result = Stack(cluster, port, run_dir, cluster.pki.ca.cert)
    try:
        asyncio.run(_prepare_cluster(result))
        result.start_scheduler()
        asyncio.run(_register_webhook(result))
        result.plugin = _start_plugin(result)
        asyncio.run(_wait_registered(result))
        yield result
    finally:
        result.stop_scheduler()
        if result.plugin is not None:
            result.plugin.terminate()
            result.plugin.wait(15)
        cluster.stop()


async def _prepare_cluster(stack: Stack) -> None:
    client = client_for(stack.cluster)
    try:
        for name in MAIN_NODES:
            await create_gpu_node(client, name, gpus=0, labels={"pool": "main"}, wait_ready=False)
        await create_gpu_node(
            client, REQUEUE_NODE, gpus=0, labels={"pool": "requeue"}, wait_ready=False
        )
        for name in LOAD_NODES:
            await create_gpu_node(client, name, gpus=0, labels={"pool": "load"}, wait_ready=False)
    finally:
        await client.close()


def _start_plugin(stack: Stack) -> subprocess.Popen[bytes]:
    four, one = _inventory(stack.run_dir, 4), _inventory(stack.run_dir, 1)
    nodes = [f"{n}={four}" for n in (*MAIN_NODES, *LOAD_NODES)] + [f"{REQUEUE_NODE}={one}"]
    log = open(stack.run_dir / "device-plugin.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [
            *HAMI,
            "device-plugin",
            "--simulate",
            "--kubeconfig",
            str(stack.cluster.kubeconfig),
            "--nodes",
            ",".join(nodes),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _wait_registered(stack: Stack) -> None:
    api = LightkubeAPI(load_kubeconfig(stack.cluster.kubeconfig))
    try:

        async def registered() -> bool:
            nodes = (await api.list(NODES)).items
            return all(keys.NVIDIA_REGISTER in objects.annotations(n) for n in nodes)

        await wait_until(registered, 60, "simulated device plugin registrations")
    finally:
        await api.close()


async def _register_webhook(stack: Stack) -> None:
    api = LightkubeAPI(load_kubeconfig(stack.cluster.kubeconfig))
    selector = {
        "matchExpressions": [{"key": keys.WEBHOOK_LABEL, "operator": "NotIn", "values": ["ignore"]}]
    }
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "hami-webhook"},
        "webhooks": [
            {
                "name": "vgpu.hami.io",
                "admissionReviewVersions": ["v1", "v1beta1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "matchPolicy": "Equivalent",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{stack.port}/webhook",
                    "caBundle": base64.b64encode(stack.ca.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "*",
                    }
                ],
                "namespaceSelector": selector,
                "objectSelector": selector,
            }
        ],
    }
    try:
        await api.create(WEBHOOKS, body)
        probe = _pod("probe", {"gpu": 1})

        async def mutated() -> bool:
            try:
                made = await api.create(PODS, probe, "default", dry_run=True)
            except KubeAPIError:
                return False
            return objects.spec(made).get("schedulerName") == "hami-scheduler"

        await wait_until(mutated, 30, "the webhook to mutate pods")
    finally:
        await api.close()


def _pod(name: str, limits: dict[str, object], pool: str = "main", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"pool": pool},
            "containers": [
                {
                    "name": "cuda",
                    "image": "example.invalid/cuda",
                    "resources": {"limits": {f"nvidia.com/{k}": str(v) for k, v in limits.items()}},
                }
            ],
            **spec,
        },
    }


@pytest_asyncio.fixture(loop_scope="function")
async def api(stack: Stack) -> AsyncIterator[LightkubeAPI]:
    client = LightkubeAPI(load_kubeconfig(stack.cluster.kubeconfig))
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="function")
async def ns(api: LightkubeAPI) -> AsyncIterator[str]:
    name = f"hami-{os.urandom(4).hex()}"
    await api.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    for pod in (await api.list(PODS, namespace=name)).items:
        with contextlib.suppress(KubeAPIError):
            await api.delete(PODS, objects.name(pod), name, grace_seconds=0)


async def _bound(api: LightkubeAPI, ns: str, name: str) -> Manifest | None:
    pod = await api.get(PODS, name, ns)
    return pod if objects.spec(pod).get("nodeName") else None


async def _delete(api: LightkubeAPI, ns: str, name: str) -> None:
    await api.delete(PODS, name, ns, grace_seconds=0)


@pytest.mark.timeout(120)
async def test_worked_example_through_webhook_filter_and_bind(api: LightkubeAPI, ns: str) -> None:
    await api.create(PODS, _pod("gpu-pod", {"gpu": 1, "gpumem": 3000, "gpucores": 30}), ns)
    pod = await wait_until(lambda: _bound(api, ns, "gpu-pod"), 30, "gpu-pod to bind")
    assert objects.spec(pod)["schedulerName"] == "hami-scheduler"
    node = str(objects.spec(pod)["nodeName"])
    annotations = objects.annotations(pod)
    registered = objects.annotations(await api.get(NODES, node))[keys.NVIDIA_REGISTER]
    uuids = [d.id for d in codec.decode_node_devices(registered)]
    device = codec.decode_pod_devices(annotations[keys.NVIDIA_ALLOCATED])[0][0]
    assert device.uuid in uuids
    assert annotations[keys.NVIDIA_ALLOCATED] == f"{device.uuid},NVIDIA,3000,30:;"
    assert annotations[keys.VGPU_NODE] == node
    assert objects.labels(pod)[keys.VGPU_NODE] == node
    assert annotations[keys.VGPU_TIME].isdigit()
    assert annotations[keys.BIND_TIME].isdigit()
    assert annotations[keys.BIND_PHASE] in ("allocating", "success")

    async def allocated() -> bool:
        done = await api.get(PODS, "gpu-pod", ns)
        return objects.annotations(done).get(keys.BIND_PHASE) == "success"

    await wait_until(allocated, 30, "the device plugin to allocate")
    lock = objects.annotations(await api.get(NODES, node)).get(keys.NODE_LOCK)
    assert lock is None or not lock.endswith(f",{ns},gpu-pod")


@pytest.mark.timeout(60)
async def test_webhook_denies_invalid_request(api: LightkubeAPI, ns: str) -> None:
    with pytest.raises(KubeAPIError) as denied:
        await api.create(PODS, _pod("bad", {"gpu": 1, "gpucores": 300}), ns)
    assert "container cuda" in str(denied.value) and "nvidia.com/gpucores" in str(denied.value)
    privileged = _pod("priv", {"gpu": 1})
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(KubeAPIError, match="container cuda is privileged"):
        await api.create(PODS, privileged, ns)


@pytest.mark.timeout(120)
async def test_requeue_after_blocking_pod_is_deleted(api: LightkubeAPI, ns: str) -> None:
    await api.create(PODS, _pod("blocker", {"gpu": 1}, pool="requeue"), ns)
    await wait_until(lambda: _bound(api, ns, "blocker"), 30, "blocker to bind")
    await api.create(PODS, _pod("waiting", {"gpu": 1}, pool="requeue"), ns)
    await asyncio.sleep(3)
    assert await _bound(api, ns, "waiting") is None
    await _delete(api, ns, "blocker")
    started = time.monotonic()
    await wait_until(lambda: _bound(api, ns, "waiting"), 10, "waiting to bind")
    assert time.monotonic() - started <= 5.0


@pytest.mark.timeout(300)
async def test_no_overcommit_with_400_pods_on_20_nodes(api: LightkubeAPI, ns: str) -> None:
    shapes = [
        {"gpu": 1, "gpumem": 4000, "gpucores": 25},
        {"gpu": 1, "gpumem": 10000, "gpucores": 50},
        {"gpu": 2, "gpumem": 2000, "gpucores": 10},
        {"gpu": 1, "gpumem": 20000},
    ]
    await asyncio.gather(
        *(
            api.create(PODS, _pod(f"load-{i:03d}", shapes[i % len(shapes)], pool="load"), ns)
            for i in range(400)
        )
    )

    async def settled() -> bool:
        pods = (await api.list(PODS, namespace=ns)).items
        bound = sum(1 for p in pods if objects.spec(p).get("nodeName"))
        return bound > 0 and await _stable(api, ns, bound)

    await wait_until(settled, 240, "scheduling to settle", interval=2.0)
    usage: dict[str, list[int]] = {}
    pods = (await api.list(PODS, namespace=ns)).items
    for pod in pods:
        value = objects.annotations(pod).get(keys.NVIDIA_ALLOCATED)
        if not value or not objects.spec(pod).get("nodeName"):
            continue
        for container in codec.decode_pod_devices(value):
            for d in container:
                slot = usage.setdefault(d.uuid, [0, 0, 0])
                slot[0] += 1
                slot[1] += d.usedmem
                slot[2] += d.usedcores
    for uuid, (count, memory, cores) in usage.items():
        assert count <= 10 and memory <= 23028 and cores <= 100, uuid
    pending = [p for p in pods if not objects.spec(p).get("nodeName")]
    # every pending pod must really not fit: the smallest shape (4000 MiB, 25 cores) has no room
    free = [(23028 - m, 100 - c, 10 - n) for n, m, c in usage.values()]
    free += [(23028, 100, 10)] * (len(LOAD_NODES) * 4 - len(usage))
    if pending:
        assert not any(
            m >= 2000 and c >= 10 and n >= 1 for m, c, n in free if m >= 4000 and c >= 25
        )


async def _stable(api: LightkubeAPI, ns: str, bound: int) -> bool:
    await asyncio.sleep(3)
    pods = (await api.list(PODS, namespace=ns)).items
    return sum(1 for p in pods if objects.spec(p).get("nodeName")) == bound


@pytest.mark.timeout(240)
async def test_restart_while_scheduling(stack: Stack, api: LightkubeAPI, ns: str) -> None:
    names = [f"r-{i:02d}" for i in range(40)]
    await asyncio.gather(
        *(api.create(PODS, _pod(n, {"gpu": 1, "gpumem": 2000, "gpucores": 10}), ns) for n in names)
    )

    async def some_bound() -> bool:
        pods = (await api.list(PODS, namespace=ns)).items
        return sum(1 for p in pods if objects.spec(p).get("nodeName")) >= 3

    await wait_until(some_bound, 30, "the first pods to bind", interval=0.05)
    stack.stop_scheduler(signal.SIGKILL)
    await asyncio.sleep(1)
    await asyncio.to_thread(stack.start_scheduler)
    for name in names:
        await wait_until(lambda n=name: _bound(api, ns, n), 120, f"{name} to bind")
    usage: dict[str, list[int]] = {}
    for pod in (await api.list(PODS, namespace=ns)).items:
        for container in codec.decode_pod_devices(objects.annotations(pod)[keys.NVIDIA_ALLOCATED]):
            for d in container:
                slot = usage.setdefault(d.uuid, [0, 0, 0])
                slot[0], slot[1], slot[2] = slot[0] + 1, slot[1] + d.usedmem, slot[2] + d.usedcores
    assert sum(n for n, _, _ in usage.values()) == len(names)
    assert all(n <= 10 and m <= 23028 and c <= 100 for n, m, c in usage.values())
