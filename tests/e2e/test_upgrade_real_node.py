"""`helm upgrade` of the chart on the real node while a burst of GPU pods runs (issue 24).

Two upgrades while four clients keep creating pods: the first changes a value of the device
plugin, so its DaemonSet rolls while the scheduler places pods on the node; the second changes a
value of the scheduler, so the scheduler Deployment (kube-scheduler + extender + webhook) rolls.
Afterwards every pod that fits is bound exactly once (kube-scheduler's `Scheduled` Events) and
Running with its allocation — none rejected by kubelet — the one that does not fit is still
Pending, no GPU is over-committed, and no node lock is left (docs/reliability.md).

The chart runs here as on the other real-node tests: one scheduler without a Lease (its extender
on 127.0.0.1 in the pod; the real node has no kube-proxy for the leader-elected Service path), so
the chart recreates that pod (`strategy: Recreate`: never two schedulers at once). While no
scheduler pod is Ready the webhook (`failurePolicy: Fail`) refuses pod creates; the clients retry,
as every controller does, and the refusals are counted. The two-replica Lease handover is the
chaos suite's (tests/e2e/test_chaos.py).

The device-plugin roll: kubelet marks a plugin's devices unhealthy as soon as its socket goes and
rejects a pod admitted meanwhile (`UnexpectedAdmissionError: ... no healthy devices present`).
The stopping plugin writes `hami.io/node-handshake: Deleted_<time>` before it closes the socket
and serves the pods already bound; the scheduler keeps off the node (filter and /bind) until the
new plugin, once kubelet has called its ListAndWatch, answers `Reported` (docs/device-plugin.md,
"Restarts"). The node's handshake values are sampled during the roll to show the notice.

Also here, on the same node (issue 17): kube-scheduler reads its extender client certificate only
when it starts, so a rotated certificate restarts it (the extender, sharing the pod's process
namespace, stops it; kubelet starts it again) and GPU pods are still placed over mTLS.

Root only; one real node per machine (`flock /tmp/hami-real-node.lock`)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hami.api import keys
from hami.api.annotations import decode_node_devices, decode_pod_devices
from hami.cluster.pki import CertificateAuthority, write_client_cert
from hami.demo.chart import CHART
from hami.demo.stack import poll
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, KubeAPIError, Manifest
from hami.k8s.client import LightkubeAPI
from tests.e2e.realnode import (
    EVENTS,
    NAMESPACE,
    RELEASE,
    SYSTEM,
    ChartNode,
    chart_node_up,
    delete_pod,
    kubectl,
    probe_pod,
    run_pod,
)
from tests.e2e.test_real_node import (
    DAEMONSETS,
    DEPLOYMENTS,
    NODE,
    PLUGIN_SELECTOR,
    SECRETS,
    _registered,
    chart_values,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.real_node,
    pytest.mark.chaos,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root (containerd, kubelet)"),
]

SCHEDULER_SELECTOR = "app.kubernetes.io/component=hami-scheduler"
CLIENTS = 4
# 20 pods of 1 GPU / 1000 MiB (t4-pair advertises 2 GPUs x 10 slots): 12 created from before
# the device-plugin roll on, 8 from the start of the scheduler roll on, so each roll overlaps
# creates however long the other took
PER_CLIENT_PLUGIN_ROLL = 3
PER_CLIENT_SCHEDULER_ROLL = 2
SPACING = 6.0  # seconds between one client's creates
UPGRADE_AFTER = 3  # bound pods before `helm upgrade` starts
SETTLE_LIMIT = 150.0


@pytest.fixture(scope="module")
def chart_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartNode]:
    work = tmp_path_factory.mktemp("hami-upgrade-node")
    with chart_node_up(work, "hami-chart-node", NODE, "gpu=on", chart_values) as real:
        asyncio.run(_registered(real))
        yield real


def _pod(name: str, gpumem: int) -> dict[str, Any]:
    body = probe_pod(name, "sleep 600", gpumem=gpumem)
    body["metadata"]["labels"] = {"burst": "upgrade"}
    return body


class Burst:
    """CLIENTS clients, each creating ``per_client`` pods SPACING seconds apart and retrying a
    refused create (the webhook has no endpoint while the scheduler pod is recreated)."""

    def __init__(self, api: LightkubeAPI) -> None:
        self.api = api
        self.refused: list[str] = []
        self.names: list[str] = []
        self.created_at: list[float] = []  # time.monotonic() of each create that succeeded

    async def client(self, index: int, per_client: int, prefix: str) -> None:
        await asyncio.sleep(index * SPACING / CLIENTS)
        for i in range(per_client):
            name = f"burst-{prefix}{index}-{i}"
            self.names.append(name)
            while True:
                try:
                    await self.api.create(PODS, _pod(name, 1000), NAMESPACE)
                    self.created_at.append(time.monotonic())
                    break
                except KubeAPIError as exc:
                    if exc.status == 409:  # created although the answer was lost
                        break
                    self.refused.append(f"{name}: {exc.status} {str(exc)[:160]}")
                    await asyncio.sleep(0.5)
            await asyncio.sleep(SPACING)

    async def run(self, per_client: int, prefix: str) -> None:
        await asyncio.gather(*(self.client(i, per_client, prefix) for i in range(CLIENTS)))


async def _pods(api: LightkubeAPI) -> list[Manifest]:
    return list((await api.list(PODS, namespace=NAMESPACE, label_selector="burst=upgrade")).items)


async def _bound(api: LightkubeAPI) -> int:
    return sum(1 for p in await _pods(api) if objects.spec(p).get("nodeName"))


async def _names(api: LightkubeAPI, selector: str) -> set[str]:
    return {
        objects.name(p)
        for p in (await api.list(PODS, namespace=SYSTEM, label_selector=selector)).items
    }


def _upgrade(real: ChartNode, *change: str) -> float:
    """`helm upgrade --reuse-values` with ``change`` (helm --set/--set-json arguments); seconds
    until helm's --wait is satisfied."""
    began = time.monotonic()
    real.helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        SYSTEM,
        "--reuse-values",
        *change,
        "--wait",
        "--timeout",
        "3m",
    )
    return time.monotonic() - began


def _plugin_change(real: ChartNode) -> tuple[str, str]:
    """A changed device-plugin pod template: its arguments plus ``-v`` (still INFO logging)."""
    args = chart_values(real.hook)["devicePlugin"]["extraArgs"]
    return ("--set-json", "devicePlugin.extraArgs=" + json.dumps([*args, "-v"]))


class Handshakes:
    """The node's `hami.io/node-handshake` values, sampled every 0.2 s (state, seconds)."""

    def __init__(self, api: LightkubeAPI) -> None:
        self.api = api
        self.seen: list[tuple[str, float]] = []

    async def run(self) -> None:
        began = time.monotonic()
        while True:
            try:
                notes = objects.annotations(await self.api.get(NODES, NODE))
            except KubeAPIError:
                notes = {}
            state = notes.get(keys.NVIDIA_HANDSHAKE, "-").split("_")[0].split(" ")[0]
            if not self.seen or self.seen[-1][0] != state:
                self.seen.append((state, round(time.monotonic() - began, 1)))
            await asyncio.sleep(0.2)


async def _settled(api: LightkubeAPI, fitting: list[str]) -> bool:
    by_name = {objects.name(p): p for p in await _pods(api)}
    if not all(n in by_name for n in fitting):
        return False
    for name in fitting:
        pod = by_name[name]
        phase = objects.status(pod).get("phase")
        if phase == "Failed":
            raise AssertionError(f"{name} failed: {objects.status(pod)}")
        if phase != "Running":
            return False
    return keys.NODE_LOCK not in objects.annotations(await api.get(NODES, NODE))


async def _scheduled_events(api: LightkubeAPI) -> Counter[str]:
    """Binds per pod, from kube-scheduler's `Scheduled` Events (a repeated Event counts
    its `count`/`series.count`)."""
    counts: Counter[str] = Counter()
    for event in (await api.list(EVENTS, namespace=NAMESPACE)).items:
        if event.get("reason") != "Scheduled":
            continue
        name = str(objects.section(event, "involvedObject").get("name", ""))
        series = objects.section(event, "series").get("count")
        count = series or event.get("count") or 1
        assert isinstance(count, int)  # Event count and series.count are int32
        counts[name] += count
    return counts


def _audit(node: Manifest, pods: list[Manifest]) -> dict[str, Any]:
    """No GPU over-committed: slots, MiB and cores per device against the registration."""
    devices = {
        d.id: d for d in decode_node_devices(objects.annotations(node)[keys.NVIDIA_REGISTER])
    }
    used: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for pod in pods:
        value = objects.annotations(pod).get(keys.NVIDIA_ALLOCATED)
        if not value:
            continue
        for container in decode_pod_devices(value):
            for device in container:
                slot = used[device.uuid]
                slot[0] += 1
                slot[1] += device.usedmem
                slot[2] += device.usedcores
    for uuid, (count, mem, cores) in used.items():
        info = devices[uuid]
        assert count <= info.count and mem <= info.devmem and cores <= info.devcore, (
            uuid,
            (count, mem, cores),
            info,
        )
    return {uuid: tuple(v) for uuid, v in used.items()}


async def test_helm_upgrade_during_a_burst_binds_every_fitting_pod_once(
    chart_node: ChartNode,
) -> None:
    api = chart_node.api()
    try:
        schedulers = await _names(api, SCHEDULER_SELECTOR)
        plugins = await _names(api, PLUGIN_SELECTOR)
        # one pod that no GPU of the node can hold (a T4 has 15 GiB): it must stay Pending
        await api.create(PODS, _pod("too-big", 64000), NAMESPACE)
        burst = Burst(api)
        began = time.monotonic()
        creating = asyncio.create_task(burst.run(PER_CLIENT_PLUGIN_ROLL, "p"))
        await poll(lambda: _bound_at_least(api), 60, f"{UPGRADE_AFTER} pods to be bound")
        bound_before = await _bound(api)
        plugin_roll = await _roll_plugin(api, chart_node, burst, bound_before)
        # then the scheduler rolls
        upgrade_began = time.monotonic()
        more = asyncio.create_task(burst.run(PER_CLIENT_SCHEDULER_ROLL, "s"))
        upgrade_s = await asyncio.to_thread(
            _upgrade, chart_node, "--set", "scheduler.podAnnotations.upgraded=yes"
        )
        await creating
        await more
        during = sum(1 for t in burst.created_at if upgrade_began <= t <= upgrade_began + upgrade_s)
        assert during >= CLIENTS, (
            f"the burst did not overlap the upgrade: {during} created during it"
        )
        await poll(lambda: _settled(api, burst.names), SETTLE_LIMIT, "the burst to settle")
        settle_s = time.monotonic() - began

        assert await _names(api, SCHEDULER_SELECTOR) & schedulers == set(), "scheduler not rolled"
        assert await _names(api, PLUGIN_SELECTOR) & plugins == set(), "device plugin not rolled"
        pods = await _pods(api)
        by_name = {objects.name(p): p for p in pods}
        for name in burst.names:
            annotations = objects.annotations(by_name[name])
            assert objects.spec(by_name[name]).get("nodeName") == NODE, name
            assert annotations.get(keys.BIND_PHASE) == keys.BIND_PHASE_SUCCESS, name
        big = by_name["too-big"]
        assert not objects.spec(big).get("nodeName") and objects.status(big)["phase"] == "Pending"
        scheduled = await _scheduled_events(api)
        assert {n: scheduled[n] for n in burst.names} == dict.fromkeys(burst.names, 1)
        assert scheduled["too-big"] == 0
        node = await api.get(NODES, NODE)
        assert keys.NODE_LOCK not in objects.annotations(node)
        used = _audit(node, pods)
        deployment = await api.get(DEPLOYMENTS, f"{RELEASE}-scheduler", SYSTEM)
        daemonset = await api.get(DAEMONSETS, f"{RELEASE}-device-plugin", SYSTEM)
        assert objects.status(deployment).get("readyReplicas") == 1
        assert objects.status(daemonset).get("numberReady") == 1
        refused_binds = await _refused_binds(api)
        figures = {
            "pods": len(burst.names),
            "bound_before_upgrade": bound_before,
            **plugin_roll,
            "binds_refused_plugin_stopping": refused_binds,
            "upgrade_s": round(upgrade_s, 1),
            "settle_s": round(settle_s, 1),
            "created_during_upgrade": during,
            "creates_refused": len(burst.refused),
            "refusals": sorted({r.split(": ", 1)[1][:100] for r in burst.refused})[:3],
            "devices": used,
        }
        print("UPGRADE", json.dumps(figures))
    finally:
        await _delete_burst(api, chart_node)
        await api.close()


async def _roll_plugin(
    api: LightkubeAPI, real: ChartNode, burst: Burst, bound_before: int
) -> dict[str, Any]:
    """The device plugin rolls while the scheduler places pods on the node; the node's
    handshake shows the stopping plugin's `Deleted_` notice, then the new one's `Reported`."""
    handshakes = Handshakes(api)
    sampling = asyncio.create_task(handshakes.run())
    began = time.monotonic()
    try:
        upgrade_s = await asyncio.to_thread(_upgrade, real, *_plugin_change(real))
        await poll(lambda: _reported(api), 60, "the new plugin to answer the handshake")
    finally:
        sampling.cancel()
    ended = time.monotonic()
    states = [state for state, _ in handshakes.seen]
    assert keys.HANDSHAKE_DELETED in states, handshakes.seen
    created = sum(1 for t in burst.created_at if began <= t <= ended)
    assert created >= 1, f"no pod created during the device-plugin roll ({upgrade_s:.1f} s)"
    return {
        "plugin_upgrade_s": round(upgrade_s, 1),
        "created_during_plugin_roll": created,
        "bound_during_plugin_roll": await _bound(api) - bound_before,
        "handshakes": handshakes.seen,
    }


async def _reported(api: LightkubeAPI) -> bool:
    notes = objects.annotations(await api.get(NODES, NODE))
    return notes.get(keys.NVIDIA_HANDSHAKE, "").startswith(keys.HANDSHAKE_REPORTED)


async def _refused_binds(api: LightkubeAPI) -> int:
    """hami-scheduler's `BindingFailed` Events for a node whose plugin was stopping."""
    return sum(
        int(str(e.get("count") or 1))
        for e in (await api.list(EVENTS, namespace=NAMESPACE)).items
        if "device plugin of NVIDIA is stopping" in str(e.get("message", ""))
    )


async def _bound_at_least(api: LightkubeAPI) -> bool:
    return await _bound(api) >= UPGRADE_AFTER


async def _delete_burst(api: LightkubeAPI, real: ChartNode) -> None:
    kubectl(
        real.kubectl,
        real.cluster.kubeconfig,
        "delete",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "burst=upgrade",
        "--wait=false",
    )


def _restarts(pod: Manifest, container: str) -> int:
    statuses = objects.status(pod).get("containerStatuses") or []
    assert isinstance(statuses, list)
    return sum(int(c.get("restartCount", 0)) for c in statuses if c.get("name") == container)


@pytest.mark.security
async def test_a_rotated_client_certificate_restarts_kube_scheduler(
    chart_node: ChartNode, tmp_path: Path
) -> None:
    """The client Secret gets a certificate of a new CA (as a rotation by cert-manager or by
    hand would): the extender trusts the new CA (its TLS files are reloaded), stops
    kube-scheduler once the new certificate is in its copy of the Secret, kubelet restarts
    kube-scheduler, which presents the new one; a GPU pod is placed afterwards."""
    api = chart_node.api()
    try:
        (scheduler,) = (
            await api.list(PODS, namespace=SYSTEM, label_selector=SCHEDULER_SELECTOR)
        ).items
        name = objects.name(scheduler)
        before = _restarts(scheduler, "kube-scheduler")
        ca = CertificateAuthority.create("rotated-client-ca").write(tmp_path / "ca")
        client = write_client_cert(ca, tmp_path / "client", "hami-kube-scheduler")
        secret_name = f"{RELEASE}-scheduler-client-tls"
        secret = dict(await api.get(SECRETS, secret_name, SYSTEM))
        secret["data"] = {
            key: base64.b64encode(path.read_bytes()).decode()
            for key, path in (
                ("tls.crt", client.cert),
                ("tls.key", client.key),
                ("ca.crt", ca.cert),
            )
        }
        await api.replace(SECRETS, secret_name, secret, SYSTEM)
        began = time.monotonic()

        async def restarted() -> bool:
            return _restarts(await api.get(PODS, name, SYSTEM), "kube-scheduler") > before

        # kubelet updates the Secret's volumes within its sync period (10 s here), the
        # extender acts at its second look (--cert-reload-interval 10 s)
        await poll(restarted, 150, "kube-scheduler to be restarted with the new certificate")
        restart_s = time.monotonic() - began
        await run_pod(api, probe_pod("after-rotation", "sleep 600"))
        logs = chart_node.kubectl_run("logs", name, "-n", SYSTEM, "-c", "vgpu-scheduler-extender")
        assert "stopped kube-scheduler" in logs, logs[-2000:]
        print("ROTATION", json.dumps({"kube_scheduler_restarted_s": round(restart_s, 1)}))
    finally:
        await delete_pod(api, "after-rotation")
        await api.close()
