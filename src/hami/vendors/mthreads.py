"""Moore Threads: sGPU slices learnt from node capacity, 512 MiB units (wire-format.md §4.8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import PodDevices
from hami.core.errors import RequestInvalid
from hami.core.vendor import Admission, Pick, PodAdmission
from hami.vendors import common, resources
from hami.vendors.config import MthreadsConfig
from hami.vendors.family import CapacityRule, SlicedVendor, Spec, rules

_UNIT = keys.MTHREADS_MEMORY_UNIT
_CORES = keys.MTHREADS_CORES_PER_GPU
_FULL = keys.MTHREADS_FULL_MEMORY_UNITS

SPEC = Spec(
    key=keys.MTHREADS_VENDOR,
    name="Moore Threads",
    word="GPU",
    aliases=("Mthreads", "MooreThreads"),
    allocated=keys.MTHREADS_ALLOCATED,
    lock=None,  # HAMi's Moore Threads vendor binds without a node lock (§3.13)
    memory_unit=_UNIT,
    core_default=0,
    core_max=None,
    split=True,  # memory and cores are asked for all the container's GPUs together
    # Every device the pod's earlier containers (init containers included) hold must be this
    # card (`CardNotFoundCustomFilterRule`, §4.8): `mthreads.com/gpu-index` is one pod-wide list.
    rules=rules(
        label=keys.MTHREADS_VENDOR,
        use_uuid_key=keys.MTHREADS_USE_UUID,
        nouse_uuid_key=keys.MTHREADS_NOUSE_UUID,
        same_card=True,
    ),
    # ceil(cores/16) cards sharing the memory capacity evenly
    capacity=CapacityRule(uuid="mthreads", count=100, per_card=_CORES),
    stamps={keys.MTHREADS_PREDICATE_TIME: "unix-nanos", keys.MTHREADS_PREDICATE_NODE: "node-name"},
    unit="cores",  # of 16 per GPU
)


@dataclass(frozen=True, slots=True)
class MthreadsVendor(SlicedVendor):
    """The `Mthreads` vendor, configured by the `mthreads:` section."""

    config: MthreadsConfig = field(default_factory=MthreadsConfig)
    spec = SPEC

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

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = SlicedVendor.pod_annotations(self, devices, picks)
        last = [c for c in picks if c]
        if last:
            out[keys.MTHREADS_GPU_INDEX] = codec.encode_comma_list(str(p.index) for p in last[-1])
        return out
