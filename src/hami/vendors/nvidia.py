"""NVIDIA: HAMi-core slices (memory, cores, split count) and dynamic MIG (wire-format.md §1–§3)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import DeviceInfo, MigAllocation, PodDevices
from hami.core.config import NvidiaConfig
from hami.core.errors import RequestInvalid
from hami.core.model import MEM_PCT_UNSET, ContainerRequest, Device
from hami.core.slicefit import SliceRules
from hami.core.vendor import Admission, Pick
from hami.vendors import common, resources
from hami.vendors.family import SlicedVendor, Spec

INT32_MAX = common.INT32_MAX
SPEC = Spec(
    key=keys.NVIDIA_VENDOR,
    name="NVIDIA",
    word="GPU",
    register=keys.NVIDIA_REGISTER,
    handshake=keys.NVIDIA_HANDSHAKE,
    to_allocate=keys.NVIDIA_TO_ALLOCATE,
    allocated=keys.NVIDIA_ALLOCATED,
    rules=SliceRules(label=keys.NVIDIA_VENDOR),
)


@dataclass(frozen=True, slots=True)
class NvidiaVendor(SlicedVendor):
    """The NVIDIA vendor, configured by the `nvidia:` section of the device config."""

    config: NvidiaConfig = NvidiaConfig()
    spec = SPEC

    # --- requests --------------------------------------------------------------------------------

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        cfg = self.config
        nums = resources.bounded(container, cfg.resource_count_name, where, 0)
        if not nums:
            return None
        memreq = resources.bounded(container, cfg.resource_memory_name, where, 0) or 0
        if cfg.memory_factor > 1:
            memreq *= cfg.memory_factor
        if memreq > INT32_MAX:
            raise RequestInvalid(where, cfg.resource_memory_name, f"{memreq} MiB is too large")
        pct = resources.bounded(container, cfg.resource_memory_percentage_name, where, 0, 100)
        mem_pct = pct if pct else MEM_PCT_UNSET
        if mem_pct == MEM_PCT_UNSET and memreq == 0:
            if cfg.default_memory:
                memreq = cfg.default_memory
            else:
                mem_pct = 100
        cores = resources.bounded(container, cfg.resource_core_name, where, 0, 100)
        return ContainerRequest(
            vendor=self.key,
            nums=nums,
            memreq=memreq,
            mem_pct=mem_pct,
            coresreq=cfg.default_cores if cores is None else cores,
        )

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """HAMi's webhook defaults for one container (§3.1), with invalid values refused."""
        cfg = self.config
        out: dict[str, object] = copy.deepcopy(dict(container))
        env: dict[str, str] = {}
        limits = common.section_of(out, "limits")
        resources.bounded(out, cfg.resource_memory_percentage_name, where, 0, 100)
        resources.bounded(out, cfg.resource_core_name, where, 0, 100)
        resources.bounded(out, cfg.resource_memory_name, where, 0)
        priority = resources.integer(out, cfg.resource_priority_name, where)
        if priority is not None and cfg.resource_priority_name in limits:
            env["CUDA_TASK_PRIORITY"] = str(priority)
        if cfg.gpu_core_policy and cfg.gpu_core_policy != "default":
            env["GPU_CORE_UTILIZATION_POLICY"] = cfg.gpu_core_policy
        uses = self._default_count(out, limits)
        if uses:
            self._default_exclusive(out, limits)
        elif cfg.overwrite_env:
            env["NVIDIA_VISIBLE_DEVICES"] = "none"
        return Admission(uses_vendor=uses, container=out, env=env)

    def _default_count(self, container: Mapping[str, object], limits: dict[str, object]) -> bool:
        cfg = self.config
        if cfg.resource_count_name in limits:
            return True
        share_names = (
            cfg.resource_core_name,
            cfg.resource_memory_name,
            cfg.resource_memory_percentage_name,
        )
        if any(n and n in limits for n in share_names) and cfg.default_gpu_num > 0:
            limits[cfg.resource_count_name] = cfg.default_gpu_num
            return True
        return resources.raw(container, cfg.resource_count_name) is not None

    def _default_exclusive(
        self, container: Mapping[str, object], limits: dict[str, object]
    ) -> None:
        """A bare GPU request (whole-card memory, no cores given) gets the whole card's cores."""
        cfg = self.config
        if resources.raw(container, cfg.resource_core_name) is not None:
            return
        pct = resources.raw(container, cfg.resource_memory_percentage_name)
        mem = resources.raw(container, cfg.resource_memory_name)
        whole_card = (str(pct) == "100") if pct is not None else mem is None
        if whole_card or not cfg.resource_memory_name:
            limits[cfg.resource_core_name] = 100

    def resource_names(self) -> tuple[str, ...]:
        cfg = self.config
        extra = (cfg.resource_memory_percentage_name, cfg.resource_priority_name)
        return (*SlicedVendor.resource_names(self), *(n for n in extra if n))

    # --- node inventory --------------------------------------------------------------------------

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        value = annotations.get(keys.NVIDIA_REGISTER)
        if not value:
            return ()
        infos = codec.decode_node_devices(value, keys.NVIDIA_REGISTER)
        pairs: dict[str, Mapping[str, int]] = {}
        score = annotations.get(keys.NVIDIA_SCORE)
        if score:
            pairs = {p.uuid: p.scores for p in codec.decode_pair_scores(score)}
        return tuple(self._device(info, pairs.get(info.id, {})) for info in infos)

    def _device(self, info: DeviceInfo, pairs: Mapping[str, int]) -> Device:
        return dataclasses.replace(
            common.device_from_info(info, self.key),
            mode=info.mode or keys.MODE_HAMI_CORE,
            mig_profiles=info.mig_profiles,
            pair_scores=dict(pairs),
        )

    # --- fit and annotations -----------------------------------------------------------------------

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = SlicedVendor.pod_annotations(self, devices, picks)
        mig = [
            MigAllocation(
                container_index=ci,
                device_index=di,
                gpu_uuid=pick.device.uuid,
                profile=pick.mig.profile,
                placement=pick.mig.placement,
            )
            for ci, container in enumerate(picks)
            for di, pick in enumerate(container)
            if pick.mig is not None
        ]
        if mig:
            out[keys.MIG_ALLOCATIONS] = codec.encode_mig_allocations(mig)
        return out
