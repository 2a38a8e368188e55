"""The fake discovery backend: GPUs from a YAML inventory, health events injectable.

Inventory format (see examples/inventory/)::

    gpus:
      - uuid: GPU-…            # optional: derived from the node name and index when absent
        model: NVIDIA A100-SXM4-40GB
        memoryMiB: 40960
        numa: 0                # optional
        busId: "0000:07:00.0"  # optional
        healthy: true          # optional; edit the file to flip it (re-read every 0.5 s)
        mig:                   # optional: the fake MIG model (hami.agent.mig.fake)
          enabled: true        # MIG mode at power-on (default false)
          instances:           # instances present at power-on (made by someone else)
            - {profile: 1g.5gb, start: 6}
          faults:              # NVML errors every call of an operation returns
            createComputeInstance: insufficient-resources
    links:                     # optional: pair topology for `hami.io/node-nvidia-score`
      - gpus: [0, 1]           # GPU indexes
        pcie: node             # system | node | hostbridge | multiple | single | internal
        nvlinks: 12

MIG profiles come from the model's table (`hami.agent.mig.catalog`: A100 40GB/80GB, H100
80GB) unless ``migProfiles`` lists them explicitly.

Health changes come from :meth:`FakeSource.inject_xid` / :meth:`FakeSource.recover` (in
process) or from edits of ``healthy`` in the file (across processes).
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hami import yamlio
from hami.agent.discovery.port import LINK_SCORES, NVLINK_SCORE
from hami.agent.errors import ConfigError
from hami.agent.mig.catalog import MigError, ProfileSpec, specs_for, to_profiles
from hami.agent.mig.fake import FAULT_CODES, FakeMig, FakeMigGpu
from hami.agent.values import Gpu, HealthEvent
from hami.api.types import MigPlacement, MigProfile, PairScores

POLL_SECONDS = 0.5
_UUID_NAMESPACE = uuidlib.UUID("6d1c3b0e-7a51-4a8e-9d2f-0f7d3c1b9a42")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Placement(_Strict):
    start: int = Field(ge=0)
    size: int = Field(ge=1)


class _Profile(_Strict):
    name: str = Field(min_length=1)
    memory_mb: int = Field(alias="memoryMB", ge=1)
    core: int = Field(ge=1, le=100)
    slice_count: int = Field(alias="sliceCount", ge=1)
    placements: list[_Placement] = []


class _MigInstance(_Strict):
    profile: str = Field(min_length=1)
    start: int = Field(ge=0)


_Operation = Literal[
    "setMigMode",
    "createGpuInstance",
    "createComputeInstance",
    "destroyComputeInstance",
    "destroyGpuInstance",
]
_Fault = Literal[
    "in-use", "insufficient-resources", "not-supported", "invalid-argument", "not-found"
]


class _Mig(_Strict):
    enabled: bool = False
    instances: list[_MigInstance] = []
    faults: dict[_Operation, _Fault] = {}


class _Gpu(_Strict):
    uuid: str | None = Field(None, pattern=r"^GPU-[A-Za-z0-9-]+$")
    index: int | None = Field(None, ge=0)
    model: str = Field(min_length=1)
    memory_mib: int = Field(alias="memoryMiB", ge=0)
    numa: int = Field(0, ge=0)
    bus_id: str = Field("", alias="busId")
    healthy: bool = True
    mig_profiles: list[_Profile] = Field([], alias="migProfiles")
    mig: _Mig = _Mig()


class _Link(_Strict):
    gpus: tuple[int, int]
    pcie: Literal["system", "node", "hostbridge", "multiple", "single", "internal"] | None = None
    nvlinks: int = Field(0, ge=0, le=18)


class _Inventory(_Strict):
    gpus: list[_Gpu] = Field(min_length=1)
    links: list[_Link] = []


class Inventory:
    """A validated inventory: GPUs plus pair scores."""

    def __init__(
        self,
        gpus: Sequence[Gpu],
        scores: Sequence[PairScores],
        mig: Sequence[FakeMigGpu] = (),
    ) -> None:
        self.gpus = tuple(gpus)
        self.scores = tuple(scores)
        self.mig = tuple(mig)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def derived_uuid(node_name: str, index: int) -> str:
    """A stable GPU UUID for inventories that leave ``uuid`` out (one per node and index)."""
    return f"GPU-{uuidlib.uuid5(_UUID_NAMESPACE, f'{node_name}/{index}')}"


def _specs(item: _Gpu) -> tuple[ProfileSpec, ...]:
    """Explicit ``migProfiles`` (NVML ids in list order), else the model's table."""
    if not item.mig_profiles:
        return specs_for(item.model)
    return tuple(
        ProfileSpec(
            name=p.name,
            nvml_id=i,
            memory_mb=p.memory_mb,
            compute=p.slice_count,
            sms=p.core,
            starts=tuple(x.start for x in p.placements),
            size=p.placements[0].size if p.placements else p.slice_count,
        )
        for i, p in enumerate(item.mig_profiles)
    )


def _to_gpu(item: _Gpu, position: int, node_name: str) -> Gpu:
    index = position if item.index is None else item.index
    if item.mig_profiles:
        profiles = tuple(
            MigProfile(
                name=p.name,
                memory_mb=p.memory_mb,
                core=p.core,
                slice_count=p.slice_count,
                placements=tuple(MigPlacement(x.start, x.size) for x in p.placements),
            )
            for p in item.mig_profiles
        )
    else:
        profiles = to_profiles(specs_for(item.model))
    return Gpu(
        uuid=item.uuid or derived_uuid(node_name, index),
        index=index,
        model=item.model,
        memory_mib=item.memory_mib,
        numa=item.numa,
        bus_id=item.bus_id,
        healthy=item.healthy,
        mig_profiles=profiles,
    )


def _scores(gpus: Sequence[Gpu], links: Sequence[_Link]) -> tuple[PairScores, ...]:
    table: dict[str, dict[str, int]] = {g.uuid: {} for g in gpus}
    for link in links:
        a, b = (gpus[i].uuid for i in link.gpus)
        score = (LINK_SCORES[link.pcie] if link.pcie else 0) + NVLINK_SCORE * link.nvlinks
        table[a][b] = table[a].get(b, 0) + score
        table[b][a] = table[b].get(a, 0) + score
    return tuple(PairScores(uuid=u, scores=s) for u, s in table.items() if s)


def _check_links(model: _Inventory, source: str) -> None:
    count = len(model.gpus)
    for i, link in enumerate(model.links):
        a, b = link.gpus
        if a == b or not (0 <= a < count and 0 <= b < count):
            raise ConfigError(
                f"{source}: links[{i}].gpus: {list(link.gpus)} must name two different GPU "
                f"indexes 0..{count - 1}"
            )


def parse_inventory(data: object, source: str, node_name: str = "") -> Inventory:
    try:
        model = _Inventory.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{source}: {_where(tuple(first['loc']))}: {first['msg']}") from None
    _check_links(model, source)
    gpus = [_to_gpu(item, i, node_name) for i, item in enumerate(model.gpus)]
    if len({g.uuid for g in gpus}) != len(gpus):
        raise ConfigError(f"{source}: gpus: GPU UUIDs must be unique")
    mig = [
        _mig_gpu(item, gpu, f"{source}: gpus[{i}].mig")
        for i, (item, gpu) in enumerate(zip(model.gpus, gpus, strict=True))
    ]
    return Inventory(gpus, _scores(gpus, model.links), mig)


def _mig_gpu(item: _Gpu, gpu: Gpu, where: str) -> FakeMigGpu:
    specs = _specs(item)
    if not specs and (item.mig.enabled or item.mig.instances):
        raise ConfigError(f"{where}: {item.model} has no MIG profiles")
    found = FakeMigGpu(
        uuid=gpu.uuid,
        specs=specs,
        enabled=item.mig.enabled,
        instances=tuple((x.profile, x.start) for x in item.mig.instances),
        faults={op: FAULT_CODES[name] for op, name in item.mig.faults.items()},
    )
    try:
        FakeMig([replace(found, faults={})])  # power it on once: bad instances fail here
    except MigError as exc:
        raise ConfigError(f"{where}.instances: {exc}") from None
    return found


def load_inventory(path: Path, node_name: str = "") -> Inventory:
    """Read and validate an inventory file; errors name the file and the key."""
    try:
        data = yamlio.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_inventory(data, str(path), node_name)


class FakeSource:
    """A `DeviceSource` over an inventory; one consumer of `health_events` at a time."""

    def __init__(
        self,
        inventory: Inventory,
        path: Path | None = None,
        node_name: str = "",
        mig_state: Path | None = None,
    ) -> None:
        self._gpus = inventory.gpus
        self._mig = FakeMig(inventory.mig, mig_state)
        self._scores = inventory.scores
        self._path = path
        self._node_name = node_name
        self._events: asyncio.Queue[HealthEvent] = asyncio.Queue()
        self._stamp = self._file_stamp()

    def gpus(self) -> Sequence[Gpu]:
        return self._gpus

    def pair_scores(self) -> Sequence[PairScores]:
        return self._scores

    def close(self) -> None:
        return None

    def mig(self) -> FakeMig:
        """The fake MIG backend of this node's GPUs (state in ``mig_state`` when given)."""
        return self._mig

    def inject_xid(self, uuid: str, xid: int = 79) -> None:
        """Report a critical XID on one GPU (79: fallen off the bus)."""
        self._events.put_nowait(HealthEvent(uuid, False, f"XID {xid}", xid=xid))

    def recover(self, uuid: str) -> None:
        self._events.put_nowait(HealthEvent(uuid, True, "recovered"))

    async def health_events(self) -> AsyncIterator[HealthEvent]:
        while True:
            try:
                yield await asyncio.wait_for(self._events.get(), POLL_SECONDS)
            except TimeoutError:
                for event in self._reload():
                    yield event

    def _file_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            info = self._path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def _reload(self) -> list[HealthEvent]:
        """Health edits in the inventory file become events; a broken edit is ignored."""
        stamp = self._file_stamp()
        if self._path is None or stamp == self._stamp:
            return []
        self._stamp = stamp
        try:
            fresh = {g.uuid: g.healthy for g in load_inventory(self._path, self._node_name).gpus}
        except ConfigError:
            return []
        events = [
            HealthEvent(g.uuid, fresh[g.uuid], "inventory edited")
            for g in self._gpus
            if g.uuid in fresh and fresh[g.uuid] != g.healthy
        ]
        self._gpus = tuple(replace(g, healthy=fresh.get(g.uuid, g.healthy)) for g in self._gpus)
        return events
