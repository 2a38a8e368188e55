"""Moore Threads: sGPU slices learnt from node capacity, 512 MiB units (wire-format.md §4.8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Unfit
from hami.core.vendor import (
    Admission,
    Candidate,
    FitContext,
    NodeLockSpec,
    Pick,
    PodAdmission,
    Stamp,
)
from hami.vendors import common, resources
from hami.vendors.config import MthreadsConfig

_RULES = SliceRules(
    gates=False,
    mig=False,
    topology=False,
    quota=False,
    label=keys.MTHREADS_VENDOR,
    use_uuid_key=keys.MTHREADS_USE_UUID,
    nouse_uuid_key=keys.MTHREADS_NOUSE_UUID,
    same_card=True,
)
_UNIT = keys.MTHREADS_MEMORY_UNIT
_CORES = keys.MTHREADS_CORES_PER_GPU
_FULL = keys.MTHREADS_FULL_MEMORY_UNITS


@dataclass(frozen=True, slots=True)
class MthreadsVendor:
    """The `Mthreads` vendor, configured by the `mthreads:` section."""

    config: MthreadsConfig = field(default_factory=MthreadsConfig)

    @property
    def key(self) -> str:
        return keys.MTHREADS_VENDOR

    @property
    def node_lock(self) -> NodeLockSpec | None:
        """HAMi's Moore Threads vendor binds without a node lock (§3.13)."""
        return None

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """More than one GPU, or one without memory, takes whole cards (16 cores, 96 units).

        HAMi also sets the pod annotation `mthreads.com/request-gpu-num` for count > 1; the
        webhook writes it from `request_gpu_num`.
        """
        cfg = self.config
        count = resources.integer(container, cfg.resource_count_name, where)
        if count is None:
            return Admission(uses_vendor=False, container=container)
        if count <= 0:
            raise RequestInvalid(where, cfg.resource_count_name, f"{count} must be positive")
        out = common.mutable(container)
        limits = common.section_of(out, "limits")
        memory = resources.integer(out, cfg.resource_memory_name, where)
        if count > 1 or memory is None:
            limits[cfg.resource_core_name] = count * _CORES
            limits[cfg.resource_memory_name] = count * _FULL
        elif memory not in keys.MTHREADS_MEMORY_SIZES:
            allowed = ", ".join(str(m) for m in keys.MTHREADS_MEMORY_SIZES)
            raise RequestInvalid(
                where, cfg.resource_memory_name, f"{memory} must be one of {allowed}"
            )
        return Admission(uses_vendor=True, container=out)

    def request_gpu_num(self, container: Mapping[str, object], where: str) -> int | None:
        """The pod annotation value HAMi's webhook adds for multi-GPU containers."""
        count = resources.integer(container, self.config.resource_count_name, where)
        return count if count is not None and count > 1 else None

    def pod_admission(
        self,
        annotations: Mapping[str, str],
        containers: Sequence[Mapping[str, object]],
        where: str,
    ) -> PodAdmission:
        """`mthreads.com/request-gpu-num` for a multi-GPU container (the last one wins, §4.8)."""
        out: dict[str, str] = {}
        for container in containers:
            count = self.request_gpu_num(container, where)
            if count is not None:
                out[keys.MTHREADS_REQUEST_GPU_NUM] = str(count)
        return PodAdmission(annotations=out)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        cfg = self.config
        nums = resources.bounded(container, cfg.resource_count_name, where, 0, common.INT32_MAX)
        if not nums:
            return None
        units = resources.bounded(container, cfg.resource_memory_name, where, 0) or 0
        memory = common.scaled_memory(units, _UNIT, where, cfg.resource_memory_name)
        cores = resources.bounded(container, cfg.resource_core_name, where, 0) or 0
        return ContainerRequest(
            vendor=self.key,
            nums=nums,
            memreq=memory // nums,
            mem_pct=100 if memory == 0 else 0,
            coresreq=cores // nums,
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return ()  # registered through node capacity

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        """ceil(cores/16) cards sharing the memory capacity evenly."""
        cores = common.capacity_of(capacity, self.config.resource_core_name)
        if cores <= 0:
            return ()
        memory = common.capacity_of(capacity, self.config.resource_memory_name)
        per_card = memory * _UNIT * _CORES // cores
        return tuple(
            Device(
                uuid=f"{node}-mthreads-{i}",
                vendor=self.key,
                type=self.key,
                count=100,
                memory=per_card,
                cores=_CORES,
                index=i,
            )
            for i in range(-(-cores // _CORES))
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """The generic slice fit, plus: every device the pod's earlier containers (init
        containers included) hold must be this card (`CardNotFoundCustomFilterRule`, §4.8);
        `mthreads.com/gpu-index` is one pod-wide list, so the containers cannot differ."""
        return slice_fit(candidates, request, ctx, _RULES)

    def stamps(self) -> Mapping[str, Stamp]:
        return {
            keys.MTHREADS_PREDICATE_TIME: "unix-nanos",
            keys.MTHREADS_PREDICATE_NODE: "node-name",
        }

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = common.device_list_annotations(devices, None, keys.MTHREADS_ALLOCATED)
        last = [c for c in picks if c]
        if last:
            out[keys.MTHREADS_GPU_INDEX] = codec.encode_comma_list(str(p.index) for p in last[-1])
        return out

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, keys.MTHREADS_ALLOCATED)
