"""``hami dra-plugin``: the DRA kubelet plugin of one node.

Three jobs, one asyncio loop:

* kubelet plugin registration: a ``pluginregistration.Registration`` server on
  ``<kubelet>/plugins_registry/<driver>-reg.sock``; kubelet's plugin watcher finds the socket,
  calls ``GetInfo`` and then dials the DRA endpoint it names;
* ``v1.DRAPlugin`` on ``<kubelet>/plugins/<driver>/dra.sock``: ``NodePrepareResources`` reads
  each claim's allocation from the API and writes its CDI spec (:mod:`hami.agent.dra.prepare`),
  ``NodeUnprepareResources`` removes it; both idempotent;
* the node's ResourceSlice (:mod:`hami.agent.dra.slices`): published at start, again on every health
  event and whenever a re-discovery finds GPUs added or removed, with a new pool generation.

Before any of it, the node's container runtime is checked: one that applies no CDI devices
would start a claim's containers without libvgpu, so the plugin refuses to serve (a Warning
Event on the Node, exit) rather than let a pod run unlimited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from hami.agent.allocation.response import HookFiles
from hami.agent.config.settings import Settings
from hami.agent.discovery.port import DeviceSource
from hami.agent.dra.kube import DraKube, publish
from hami.agent.dra.prepare import PrepareError, SpecStore, cache_dirs, cdi_spec, claim_devices
from hami.agent.dra.slices import resource_slice, slice_devices
from hami.agent.errors import IsolationUnavailable
from hami.agent.values import Gpu
from hami.core.dra import names
from hami.core.dra.runtime import cdi_support
from hami.k8s.views import EventSpec

try:
    from hami.agent.dra.proto import dra_pb2, dra_pb2_grpc
    from hami.agent.dra.proto import pluginregistration_pb2 as reg_pb2
    from hami.agent.dra.proto import pluginregistration_pb2_grpc as reg_pb2_grpc
except ImportError as exc:  # pragma: no cover - only without `make proto`
    raise ImportError(
        "the DRA gRPC stubs are missing: generate them with `make proto` "
        "(python -m hami.agent.kubelet.protogen)"
    ) from exc

log = logging.getLogger(__name__)

DRA_SERVICE = "v1.DRAPlugin"  # k8s.io/kubelet/pkg/apis/dra/v1 DRAPluginService
PLUGIN_TYPE = "DRAPlugin"  # pluginregistration/v1 constants.go
KUBELET_DIR = Path("/var/lib/kubelet")
NO_CDI_REASON = "DRARuntimeWithoutCDI"


@dataclass(frozen=True, slots=True)
class Sockets:
    """Where the two servers listen (under kubelet's root directory)."""

    kubelet_dir: Path = KUBELET_DIR

    @property
    def registration(self) -> Path:
        return self.kubelet_dir / "plugins_registry" / f"{names.DRIVER}-reg.sock"

    @property
    def dra(self) -> Path:
        return self.kubelet_dir / "plugins" / names.DRIVER / "dra.sock"


class DraNode:
    """The node's devices, its slice and its prepared claims."""

    def __init__(self, settings: Settings, source: DeviceSource, kube: DraKube) -> None:
        self.settings = settings
        self.source = source
        self.kube = kube
        self.store = SpecStore(settings.cdi_spec_dir)
        self.healthy: dict[str, bool] = {}
        self._gpus: Sequence[Gpu] = ()
        self._lock = asyncio.Lock()  # one prepare/unprepare of a claim at a time

    def gpus(self) -> Sequence[Gpu]:
        managed = self.settings.node.manages
        return [g for g in self.source.gpus() if managed(g.uuid, g.index)]

    def by_device(self) -> dict[str, Gpu]:
        return {names.device_name(g.index): g for g in self.gpus()}

    async def publish(self) -> int | None:
        """Publish the node's slice when its devices changed; returns the new generation."""
        config = self.settings.node
        devices = slice_devices(
            self.gpus(),
            self.source.pair_scores(),
            healthy=self.healthy,
            memory_scaling=config.memory_scaling,
            preconfigured_mib=config.preconfigured_memory,
        )
        node = self.settings.node_name
        wanted = resource_slice(node, devices, 1, (await self.kube.node(node)).uid)
        generation = await publish(self.kube, wanted)
        if generation is not None:
            log.info(
                "published %d devices of node %s (pool generation %d)",
                len(devices),
                node,
                generation,
            )
        return generation

    async def check_runtime(self) -> None:
        """Raise :class:`IsolationUnavailable` (after a Warning Event on the Node) when the
        node's container runtime would ignore the CDI devices claims are prepared as."""
        node = self.settings.node_name
        facts = await self.kube.node(node)
        support = cdi_support(facts.runtime)
        if support.caveat:
            log.warning("node %s: %s", node, support.caveat)
        if support.problem is None:
            return
        event = EventSpec(
            "Node", "default", node, facts.uid, NO_CDI_REASON, support.problem,
            component="hami-dra-plugin",
        )  # fmt: skip
        try:
            await self.kube.record_event(event)
        except Exception as exc:  # the refusal stands; the Event is only its echo
            log.warning("recording the %s Event failed: %s", NO_CDI_REASON, exc)
        raise IsolationUnavailable(f"node {node}: {support.problem}")

    async def prepare(self, namespace: str, name: str, uid: str) -> list[Any]:
        """Write the claim's CDI spec; returns its ``dra_pb2.Device`` entries."""
        claim = await self.kube.get_claim(namespace, name)
        if claim is None or (claim.get("metadata") or {}).get("uid") != uid:
            raise PrepareError(f"claim {namespace}/{name} with UID {uid} does not exist")
        devices = claim_devices(claim, self.settings.node_name, self.by_device())
        async with self._lock:
            for directory in cache_dirs(devices, self.settings):
                directory.mkdir(parents=True, exist_ok=True)
            hook = HookFiles.inspect(self.settings)
            self.store.write(uid, cdi_spec(devices, self.settings, hook))
        return [
            dra_pb2.Device(
                request_names=[d.allocation.request],
                pool_name=d.allocation.node,
                device_name=d.allocation.device,
                cdi_device_ids=[d.cdi_id],
                **({"share_id": d.allocation.share_id} if d.allocation.share_id else {}),
            )
            for d in devices
        ]

    async def unprepare(self, uid: str) -> None:
        async with self._lock:
            self.store.remove(uid)
            cache = self.settings.hook_path / "vgpu" / "containers" / f"{uid}_claim"
            shutil.rmtree(cache, ignore_errors=True)


class DraServicer(dra_pb2_grpc.DRAPluginServicer):
    def __init__(self, node: DraNode) -> None:
        self.node = node

    async def NodePrepareResources(self, request: Any, context: Any) -> Any:
        response = dra_pb2.NodePrepareResourcesResponse()
        for claim in request.claims:
            entry = response.claims[claim.uid]
            try:
                entry.devices.extend(
                    await self.node.prepare(claim.namespace, claim.name, claim.uid)
                )
                log.info("prepared claim %s/%s", claim.namespace, claim.name)
            except Exception as exc:  # every failure is the claim's answer, never the call's
                entry.error = (
                    str(exc) if isinstance(exc, PrepareError) else f"prepare failed: {exc}"
                )
                log.warning("claim %s/%s: %s", claim.namespace, claim.name, entry.error)
        return response

    async def NodeUnprepareResources(self, request: Any, context: Any) -> Any:
        response = dra_pb2.NodeUnprepareResourcesResponse()
        for claim in request.claims:
            entry = response.claims[claim.uid]
            try:
                await self.node.unprepare(claim.uid)
                log.info("unprepared claim %s/%s", claim.namespace, claim.name)
            except OSError as exc:
                entry.error = f"unprepare failed: {exc}"
        return response


class RegistrationServicer(reg_pb2_grpc.RegistrationServicer):
    def __init__(self, endpoint: Path) -> None:
        self.endpoint = endpoint
        self.registered = asyncio.Event()

    async def GetInfo(self, request: Any, context: Any) -> Any:
        return reg_pb2.PluginInfo(
            type=PLUGIN_TYPE,
            name=names.DRIVER,
            endpoint=str(self.endpoint),
            supported_versions=[DRA_SERVICE],
        )

    async def NotifyRegistrationStatus(self, request: Any, context: Any) -> Any:
        if request.plugin_registered:
            log.info("kubelet registered DRA driver %s", names.DRIVER)
            self.registered.set()
        else:
            log.error("kubelet refused DRA driver %s: %s", names.DRIVER, request.error)
        return reg_pb2.RegistrationStatusResponse()


async def serve(servicers: Mapping[Path, Any]) -> list[grpc.aio.Server]:
    """One grpc.aio server per socket path (a stale socket file is replaced)."""
    servers = []
    for path, add in servicers.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = grpc.aio.server()
        add(server)
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        servers.append(server)
    return servers


Reopen = Callable[[], DeviceSource]


async def run(
    node: DraNode, sockets: Sockets, rediscover: float = 30.0, reopen: Reopen | None = None
) -> None:
    """Serve kubelet and keep the slice current until cancelled. Every ``rediscover`` seconds
    the slice is re-published; with ``reopen`` (a factory of fresh device sources) the GPUs are
    discovered again first, and a changed set replaces the node's source. A node whose runtime
    applies no CDI is refused before anything is served or published."""
    await node.check_runtime()
    swept = node.store.sweep()
    if swept:
        log.info("removed %d CDI scratch files of interrupted prepares", swept)
    dra = DraServicer(node)
    registration = RegistrationServicer(sockets.dra)
    servers = await serve(
        {
            sockets.dra: lambda s: dra_pb2_grpc.add_DRAPluginServicer_to_server(dra, s),
            sockets.registration: lambda s: reg_pb2_grpc.add_RegistrationServicer_to_server(
                registration, s
            ),
        }
    )
    try:
        await node.publish()
        await _follow(node, rediscover, reopen)
    finally:
        for server in servers:
            await server.stop(0.5)
        for path in (sockets.registration, sockets.dra):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


async def _health(node: DraNode) -> None:
    async for event in node.source.health_events():
        targets = [event.uuid] if event.uuid else [g.uuid for g in node.gpus()]
        for uuid in targets:
            node.healthy[uuid] = event.healthy
        log.info(
            "health: %s %s (%s)",
            event.uuid or "all GPUs",
            "healthy" if event.healthy else "unhealthy",
            event.reason,
        )
        await _publish_logged(node)


async def _follow(node: DraNode, interval: float, reopen: Reopen | None) -> None:
    """Health events of the current source, and a re-discovery every ``interval``."""
    health = asyncio.create_task(_health(node))
    try:
        while True:
            await asyncio.sleep(interval)
            if health.done():
                health.result()  # a failed health stream fails the plugin
            if reopen is not None and _swap_source(node, reopen):
                health.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await health
                health = asyncio.create_task(_health(node))
            await _publish_logged(node)
    finally:
        health.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await health


def _swap_source(node: DraNode, reopen: Reopen) -> bool:
    """Discover again; True when the set of GPUs changed (the fresh source is then kept)."""
    try:
        fresh = reopen()
    except Exception as exc:  # NVML or the inventory away for a moment: next round
        log.warning("re-discovery failed: %s", exc)
        return False
    before = {(g.uuid, g.index) for g in node.source.gpus()}
    after = {(g.uuid, g.index) for g in fresh.gpus()}
    if before == after:
        fresh.close()
        return False
    log.info("GPUs changed: %d added, %d removed", len(after - before), len(before - after))
    node.source.close()
    node.source = fresh
    return True


async def _publish_logged(node: DraNode) -> None:
    try:
        await node.publish()
    except Exception as exc:  # the API may be away: the next round retries
        log.warning("publishing the ResourceSlice failed: %s", exc)
