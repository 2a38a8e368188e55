"""The extender's defences (docs/security.md, issue 17), on the real listeners of `serve` over
an in-memory API: mTLS on /filter and /bind, pods checked by UID, the decided node enforced,
bounded bodies, heads and simulations, certificate reload, expiring decisions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hami.api.extender import filter_args_json
from hami.cluster.pki import CertificateAuthority, CertPair, write_client_cert, write_serving_cert
from hami.cluster.ports import free_ports
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Manifest
from hami.k8s.fake import FakeKube
from hami.scheduler.main import serve
from hami.scheduler.settings import SchedulerSettings

from .harness import gpu_node, gpu_pod, running

pytestmark = pytest.mark.security


@dataclass
class Stack:
    kube: FakeKube
    ca: CertPair
    pki: Path
    main: str  # https://127.0.0.1:<webhook/probes port>
    extender: str  # https://127.0.0.1:<extender port>
    client: CertPair
    settings: SchedulerSettings
    pid: int = 0  # the server's process (elsewhere=True), else this one

    def context(self, client: CertPair | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return context

    def kube_scheduler(self) -> httpx.AsyncClient:
        """What kube-scheduler is: a client with the certificate from the CA."""
        return httpx.AsyncClient(
            base_url=self.extender, verify=self.context(self.client), trust_env=False
        )


def _serve_elsewhere(settings: SchedulerSettings) -> None:
    """The scheduler in a process of its own (the attack tests: the attackers' CPU is not the
    server's), over an in-memory API with nodes n1 and n2."""

    async def main() -> None:
        kube = FakeKube()
        await kube.create(NODES, gpu_node("n1"))
        await kube.create(NODES, gpu_node("n2"))
        await serve(settings, kube, asyncio.Event())

    asyncio.run(main())


@contextlib.asynccontextmanager
async def stack(
    tmp_path: Path, *, elsewhere: bool = False, **overrides: Any
) -> AsyncIterator[Stack]:
    pki = tmp_path / "pki"
    ca = CertificateAuthority.create("test-ca").write(pki)
    serving = write_serving_cert(ca, pki, "serving")
    client = write_client_cert(ca, pki, "kube-scheduler")
    main_port, extender_port = free_ports(2)
    kube = FakeKube()
    settings = SchedulerSettings(
        http_bind=f"127.0.0.1:{main_port}",
        extender_bind=f"127.0.0.1:{extender_port}",
        cert_file=serving.cert,
        key_file=serving.key,
        client_ca_file=ca.cert,
        sync_wait=2.0,
        bind_lock_wait=0.5,
        registration_interval=3600,
        self_check_interval=0,
        events=False,
        **overrides,
    )
    stop = asyncio.Event()
    process = None
    task: asyncio.Task[object]
    if elsewhere:
        process = multiprocessing.get_context("spawn").Process(
            target=_serve_elsewhere, args=(settings,), daemon=True
        )
        process.start()
        task = asyncio.create_task(stop.wait())
    else:
        await kube.create(NODES, gpu_node("n1"))
        await kube.create(NODES, gpu_node("n2"))
        task = asyncio.create_task(serve(settings, kube, stop))
    s = Stack(
        kube,
        ca,
        pki,
        f"https://127.0.0.1:{main_port}",
        f"https://127.0.0.1:{extender_port}",
        client,
        settings,
        (process.pid or 0) if process is not None else os.getpid(),
    )
    async with httpx.AsyncClient(verify=s.context(), trust_env=False) as probe:
        for _ in range(500):
            with contextlib.suppress(httpx.HTTPError):
                if (await probe.get(f"{s.main}/readyz")).status_code == 200:
                    break
            await asyncio.sleep(0.02)
    try:
        yield s
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        if process is not None:
            process.terminate()
            process.join(10)


async def schedule(s: Stack, name: str, namespace: str = "default") -> tuple[dict[str, Any], str]:
    pod = s.kube.stored(PODS, name, namespace)
    async with s.kube_scheduler() as client:
        body = filter_args_json(pod, ["n1", "n2"])
        result = (await client.post("/filter", json=body)).json()
    return result, (result["NodeNames"] or [""])[0]


def bind_body(pod: Manifest, node: str) -> dict[str, object]:
    meta = objects.meta(pod)
    return {
        "PodName": meta["name"],
        "PodNamespace": meta.get("namespace", "default"),
        "PodUID": meta["uid"],
        "Node": node,
    }


# --- mTLS ------------------------------------------------------------------------------------


async def test_anonymous_filter_and_bind_are_refused_at_the_handshake(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        pod = await s.kube.create(PODS, gpu_pod("p"))
        # no client certificate: 403 with the reason
        async with httpx.AsyncClient(verify=s.context(), trust_env=False) as anonymous:
            for path, body in (
                ("/filter", filter_args_json(pod, ["n1"])),
                ("/bind", bind_body(pod, "n1")),
            ):
                refused = await anonymous.post(f"{s.extender}{path}", json=body)
                assert refused.status_code == 403, refused.text
                assert "client certificate required" in refused.json()["error"]
        # a client certificate from another CA: refused too
        other = CertificateAuthority.create("other").write(tmp_path / "other")
        stranger = write_client_cert(other, tmp_path / "other", "stranger")
        async with httpx.AsyncClient(verify=s.context(stranger), trust_env=False) as client:
            with pytest.raises(httpx.HTTPError):
                await client.post(f"{s.extender}/bind", json=bind_body(pod, "n1"))
        # the server certificate itself (serverAuth only) is no client certificate
        server = CertPair(s.settings.cert_file, s.settings.key_file)  # type: ignore[arg-type]
        async with httpx.AsyncClient(verify=s.context(server), trust_env=False) as client:
            with pytest.raises(httpx.HTTPError):
                await client.post(f"{s.extender}/bind", json=bind_body(pod, "n1"))
        # /filter and /bind are not on the webhook's listener at all
        async with httpx.AsyncClient(verify=s.context(), trust_env=False) as anonymous:
            for path in ("/filter", "/bind"):
                assert (await anonymous.post(f"{s.main}{path}", json={})).status_code == 404
            assert (await anonymous.get(f"{s.main}/healthz")).status_code == 200
        assert "hami.io/vgpu-node" not in objects.annotations(s.kube.stored(PODS, "p"))
        # kube-scheduler, with its certificate, is served
        result, node = await schedule(s, "p")
        assert not result["Error"] and node
        async with s.kube_scheduler() as client:
            bound = (await client.post("/bind", json=bind_body(pod, node))).json()
        assert not bound["Error"], bound
        assert objects.spec(s.kube.stored(PODS, "p")).get("nodeName") == node


# --- the pod and the decision are the API server's -----------------------------------------


async def test_bind_refuses_foreign_pods_and_other_nodes(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, s.kube_scheduler() as client:
        foreign = gpu_pod("theirs", namespace="tenant-b")
        foreign["spec"]["schedulerName"] = "default-scheduler"
        foreign["spec"]["nodeSelector"] = {"unsatisfiable": "yes"}
        theirs = await s.kube.create(PODS, foreign)
        bound = (await client.post("/bind", json=bind_body(theirs, "n1"))).json()
        assert "scheduled by 'default-scheduler', not 'hami-scheduler'" in bound["Error"]
        filtered = (await client.post("/filter", json=filter_args_json(theirs, ["n1"]))).json()
        assert "scheduled by 'default-scheduler'" in filtered["Error"]
        assert not objects.spec(s.kube.stored(PODS, "theirs", "tenant-b")).get("nodeName")

        ours = await s.kube.create(PODS, gpu_pod("ours"))
        unfiltered = (await client.post("/bind", json=bind_body(ours, "n1"))).json()
        assert "has no decision" in unfiltered["Error"]
        _, node = await schedule(s, "ours")
        other = "n2" if node == "n1" else "n1"
        moved = (await client.post("/bind", json=bind_body(ours, other))).json()
        assert f"placed on node {node} by the filter, not {other}" in moved["Error"]
        assert not objects.spec(s.kube.stored(PODS, "ours")).get("nodeName")
        assert not (await client.post("/bind", json=bind_body(ours, node))).json()["Error"]
        again = (await client.post("/bind", json=bind_body(ours, node))).json()
        assert "already bound" in again["Error"]


async def test_filter_decides_for_the_api_servers_pod_not_the_body(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, s.kube_scheduler() as client:
        # a pod that does not exist gets no allocation
        ghost = gpu_pod("ghost")
        ghost["metadata"]["uid"] = "made-up"
        result = (await client.post("/filter", json=filter_args_json(ghost, ["n1"]))).json()
        assert "not found" in result["Error"]
        # a body claiming 32000 MiB and 100 % for a pod that asks for 3000 MiB, 30 %
        real = await s.kube.create(PODS, gpu_pod("small", gpu=1, gpumem=3000, gpucores=30))
        forged = gpu_pod("small", gpu=1, gpumem=32000, gpucores=100)
        forged["metadata"]["uid"] = objects.uid(real)
        result = (await client.post("/filter", json=filter_args_json(forged, ["n1"]))).json()
        assert result["NodeNames"] == ["n1"], result
        allocated = objects.annotations(s.kube.stored(PODS, "small"))
        assert ",3000,30" in allocated["hami.io/vgpu-devices-allocated"], allocated
        # a UID that is not the named pod's
        forged["metadata"]["uid"] = "other-uid"
        result = (await client.post("/filter", json=filter_args_json(forged, ["n1"]))).json()
        assert "has UID" in result["Error"]


async def test_an_unbound_decision_expires() -> None:
    async with running(decision_ttl=300) as h:
        await h.add_node(gpu_node("n1", memory=4000))
        await h.add_pod(gpu_pod("p", gpu=1, gpumem=3000))
        await h.add_pod(gpu_pod("q", gpu=1, gpumem=3000))
        await h.settle()
        assert (await h.filter("p"))["NodeNames"] == ["n1"]
        assert (await h.filter("q"))["NodeNames"] == []  # p's decision holds the memory
        h.clock.advance(301)
        assert h.service.cache.expire() == ["default/p"]
        assert (await h.filter("q"))["NodeNames"] == ["n1"]
        # p's old decision is refused at /bind: kube-scheduler filters it again
        await h.settle()
        assert "expired" in (await h.bind("p", "n1"))["Error"]
        bound = await h.bind("q", "n1")
        assert not bound["Error"]
        await h.settle()
        h.clock.advance(3600)  # a bound pod's decision never expires
        assert h.service.cache.expire() == []


# --- bounded services -------------------------------------------------------------------------


@dataclass
class Probes:
    """/healthz probes of the attacked service (seconds each): the wall time a kubelet would
    see, and how long the server's event-loop thread and the probe each waited for a CPU
    (their ``run_delay`` in ``/proc/<tid>/schedstat``: runnable, not running)."""

    wall: list[float]
    server_wait: list[float]
    probe_wait: list[float]

    @property
    def own(self) -> list[float]:
        """The service's own latency, an upper bound: the wall time less the longer of the two
        waits for a CPU (other work on a shared 2-core VM, the attackers' CPU, which in a
        cluster is not the server's; the two may overlap, so only one is taken off). Waits for
        the GIL, garbage collection and queueing behind other requests all count."""
        waits = zip(self.wall, self.server_wait, self.probe_wait, strict=True)
        return [max(0.0, w - max(s, p)) for w, s, p in waits]


LIMIT = 0.100  # the criterion: /healthz within 100 ms during the attack


def assert_fast(probes: Probes, during: str) -> None:
    """/healthz answers within 100 ms of the service's own time while under attack, every
    probe; and within the kubelet's 1 s probe timeout in wall time, waits for a CPU included
    (docs/security.md)."""
    wall = [round(t * 1000) for t in probes.wall]
    own = [round(t * 1000) for t in probes.own]
    print(f"/healthz {during} (ms): wall {sorted(wall)}; less waits for a CPU {sorted(own)}")
    assert len(wall) >= 5, wall
    assert max(wall) < 1000, f"/healthz {during} took (ms): {wall}"
    slow = [(w, o) for w, o in zip(wall, own, strict=True) if o >= LIMIT * 1000]
    assert not slow, f"/healthz {during} over {LIMIT * 1000:.0f} ms (wall, own ms): {slow}"


PROBE = """
import json, socket, ssl, sys, time
port, ca, seconds, server = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])


def waited(path):
    # seconds runnable but not running (run_delay)
    with open(path) as stat:
        return int(stat.read().split()[1]) / 1e9


SERVER = f"/proc/{server}/task/{server}/schedstat"  # its event-loop thread (tid = pid)
PROBE = "/proc/thread-self/schedstat"
context = ssl.create_default_context(cafile=ca)
wall, server_wait, probe_wait, end = [], [], [], time.monotonic() + seconds
while time.monotonic() < end:
    before = (waited(SERVER), waited(PROBE))
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
    wall.append(time.perf_counter() - started)
    server_wait.append(waited(SERVER) - before[0])
    probe_wait.append(waited(PROBE) - before[1])
    assert reply.startswith(b"HTTP/1.1 200"), reply
    time.sleep(0.05)
print(json.dumps({"wall": wall, "server_wait": server_wait, "probe_wait": probe_wait}))
"""


async def healthz_times(port: int, ca: Path, seconds: float, server: int) -> Probes:
    """/healthz latencies on 127.0.0.1:``port`` (verified with ``ca``) as a kubelet probe sees
    them (a new TLS connection each time), from a process of its own so that the attackers'
    CPU in this one does not count; with the waits for a CPU of the server process ``server``
    (its event-loop thread) and of the probe during each."""
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE,
        str(port),
        str(ca),
        str(seconds),
        str(server),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await probe.communicate()
    assert probe.returncode == 0
    found = json.loads(out)
    return Probes(found["wall"], found["server_wait"], found["probe_wait"])


async def slow_header(port: int, context: ssl.SSLContext) -> float:
    """A connection sending its request head a byte a second; how long the server kept it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    started = time.perf_counter()
    try:
        for byte in b"POST /webhook HTTP/1.1\r\nHost: x\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
            if await _closed(reader, 1.0):
                break
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
    return time.perf_counter() - started


async def _closed(reader: asyncio.StreamReader, wait: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1), wait)
    except TimeoutError:
        return False
    return data == b""


async def big_body(url: str, context: ssl.SSLContext, size: int, declared: bool) -> int:
    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            yield b"x" * 65536
            sent += 65536
            await asyncio.sleep(0)

    headers = {"content-length": str(size)} if declared else {}
    async with httpx.AsyncClient(verify=context, trust_env=False) as client:
        try:
            if declared:
                response = await client.post(url, content=chunks(), headers=headers)
            else:
                response = await client.post(url, content=chunks())
        except httpx.HTTPError:
            return 0  # the server closed on us mid-body: refused as well
        return response.status_code


async def test_oversized_and_slow_requests_refused_while_healthz_answers(tmp_path: Path) -> None:
    async with stack(tmp_path, elsewhere=True, header_timeout=2.0, body_timeout=2.0) as s:
        port = int(s.main.rsplit(":", 1)[1])
        context = s.context()
        probe = asyncio.create_task(healthz_times(port, s.ca.cert, 4.0, s.pid))
        slow = []
        for _ in range(10):  # 100 slow connections over 0.5 s (each costs a TLS handshake)
            slow += [asyncio.create_task(slow_header(port, context)) for _ in range(10)]
            await asyncio.sleep(0.05)
        bodies = [
            asyncio.create_task(big_body(f"{s.main}/webhook", context, 100 << 20, declared))
            for declared in (True, True, False, False)
        ]
        probes = await probe
        held = await asyncio.gather(*slow)
        statuses = await asyncio.gather(*bodies)
        assert_fast(probes, "under attack")
        assert all(1.5 < h < 4.0 for h in held), held  # closed at the 2 s head deadline
        # 0: the server answered 413 and closed while the client was still sending
        assert all(code in (413, 0) for code in statuses), statuses
        # declared too large: 413 before a byte of the body is read
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 413"), reply
        assert b"over the 3145728-byte limit" in reply
        # a slow body: 408 after the body deadline
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(200), 5)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 408"), reply


async def test_too_many_requests_in_flight_are_refused(tmp_path: Path) -> None:
    async with stack(tmp_path, max_in_flight=2, body_timeout=3.0) as s:
        port = int(s.main.rsplit(":", 1)[1])
        context = s.context()
        held = []
        for _ in range(2):  # two requests stuck in their bodies hold both places
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
            await writer.drain()
            held.append(writer)
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(verify=context, trust_env=False) as client:
            busy = await client.post(f"{s.main}/webhook", json={})
            assert busy.status_code == 503 and "in flight" in busy.text
            assert (await client.get(f"{s.main}/healthz")).status_code == 200
        for writer in held:
            writer.close()


async def test_a_huge_simulation_is_capped_and_runs_off_the_event_loop(tmp_path: Path) -> None:
    async with (
        stack(tmp_path, elsewhere=True, simulation_max_nodes=3000) as s,
        s.kube_scheduler() as client,
    ):
        pod = gpu_pod("sim")  # a simulation decides for the body's pod and changes nothing
        nodes = [gpu_node(f"s{i}", 4) for i in range(2000)]
        port = int(s.main.rsplit(":", 1)[1])
        probe = asyncio.create_task(healthz_times(port, s.ca.cert, 2.0, s.pid))
        simulate = [
            asyncio.create_task(client.post("/filter", json=filter_args_json(pod, None, nodes)))
            for _ in range(2)
        ]
        probes = await probe
        results = [r.json() for r in await asyncio.gather(*simulate)]
        assert_fast(probes, "during simulations")
        assert all(not r["Error"] and len(r["Nodes"]["items"]) == 1 for r in results), results
        too_many = [gpu_node(f"t{i}", 1) for i in range(3001)]
        refused = (await client.post("/filter", json=filter_args_json(pod, None, too_many))).json()
        assert "at most 3000" in refused["Error"]


# --- certificate reload ------------------------------------------------------------------------


def served_serial(port: int, ca: Path) -> int:
    import socket

    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_serving_certificate_reloaded_when_its_files_change(tmp_path: Path) -> None:
    async with stack(tmp_path, cert_reload_interval=0.2) as s:
        port = int(s.main.rsplit(":", 1)[1])
        before = await asyncio.to_thread(served_serial, port, s.ca.cert)
        fresh = write_serving_cert(s.ca, tmp_path / "rotated", "serving")
        # as a Secret volume does it: both files replaced (here: copied over)
        assert s.settings.cert_file and s.settings.key_file
        shutil.copyfile(fresh.key, s.settings.key_file)
        shutil.copyfile(fresh.cert, s.settings.cert_file)
        from cryptography import x509

        want = x509.load_pem_x509_certificate(fresh.cert.read_bytes()).serial_number
        for _ in range(50):
            await asyncio.sleep(0.1)
            if await asyncio.to_thread(served_serial, port, s.ca.cert) == want:
                break
        assert before != want
        assert await asyncio.to_thread(served_serial, port, s.ca.cert) == want
        # kube-scheduler's certificate still works on the extender listener
        async with s.kube_scheduler() as client:
            assert (await client.get("/healthz")).status_code == 200
