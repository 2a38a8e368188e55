"""Ascend NPU: vNPU templates or hami-core soft split, NetworkID topology, 910C card pairs (§4.7)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node
from hami.core.slicefit import slice_fit
from hami.core.status import Reason, Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Held, Pick, PodAdmission
from hami.vendors import common, countfit, resources
from hami.vendors.config import VnpuConfig
from hami.vendors.family import PLAIN_RULES, SlicedVendor, Spec


@dataclass(frozen=True, slots=True)
class AscendDevice(Device):
    """An NPU with the registration's extras."""

    network_id: int | None = None
    hami_core: bool = False  # the node supports the hami-core soft split


def npu_spec(word: str) -> Spec:
    """The spec of the NPU whose common word is ``word`` (e.g. `Ascend910B3`)."""
    return Spec(
        key=word,
        register=f"hami.io/node-register-{word}",
        name="Huawei",
        word="NPU",
        aliases=("Ascend",),
        handshake=f"hami.io/node-handshake-{word}",
        to_allocate=codec.to_allocate_key(word),
        allocated=codec.allocated_key(word),
        names=("resource_name", "resource_memory_name", "resource_core_name"),
        core_default=0,
        core_max=None,
        rules=dataclasses.replace(PLAIN_RULES, label=word),
        stamps={keys.ASCEND_PREDICATE_TIME: "unix-seconds"},
    )


@dataclass(frozen=True, slots=True)
class AscendVendor(SlicedVendor):
    """One Ascend chip (`<commonWord>`), configured by one entry of `vnpus.configs`."""

    config: VnpuConfig
    hami_vnpu_core: bool = False  # `vnpus.hamiVnpuCore`; a node annotation may override it
    spec: Spec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", npu_spec(self.config.common_word))

    @property
    def runtime_key(self) -> str:
        return f"huawei.com/{self.key}"

    # --- admission and requests --------------------------------------------------------------------

    def admit_container(
        self,
        container: Mapping[str, object],
        where: str,
        annotations: Mapping[str, str] | None = None,
    ) -> Admission:
        """Round memory up to a template (hard split), pair 910C NPUs, refuse what cannot work.

        Without the pod's annotations, a container asking for `-core` is taken as hami-core.
        """
        cfg = self.config
        if cfg.resource_name not in resources.limits(container):
            env = {"ASCEND_VISIBLE_DEVICES": ""} if cfg.overwrite_env else {}
            return Admission(uses_vendor=False, container=container, env=env)
        out = common.mutable(container)
        count = resources.bounded(out, cfg.resource_name, where, 0, common.INT32_MAX) or 0
        count = self._paired_count(out, count, where)
        core = resources.bounded(out, cfg.resource_core_name, where, 0) or 0
        if annotations is None:
            soft = core > 0
        else:
            soft = annotations.get(keys.ASCEND_VNPU_MODE, "") == keys.MODE_HAMI_CORE
        if core > 0 and not soft:
            raise RequestInvalid(
                where, cfg.resource_core_name, "cores can only be requested in hami-core mode"
            )
        if not soft:
            self._trim_memory(out, count, where)
        return Admission(uses_vendor=True, container=out)

    def admit_container_in_pod(
        self, container: Mapping[str, object], where: str, annotations: Mapping[str, str]
    ) -> Admission:
        """Admission with the pod's `huawei.com/vnpu-mode` deciding hard or soft split."""
        return self.admit_container(container, where, annotations)

    def pod_admission(
        self,
        annotations: Mapping[str, str],
        containers: Sequence[Mapping[str, object]],
        where: str,
    ) -> PodAdmission:
        """The configured RuntimeClass for a pod asking for this NPU (§4.7)."""
        runtime = self.config.runtime_class_name
        if runtime and any(self.config.resource_name in resources.limits(c) for c in containers):
            return PodAdmission(runtime_class_name=runtime)
        return PodAdmission()

    def _paired_count(self, container: dict[str, object], count: int, where: str) -> int:
        cfg = self.config
        if not (cfg.common_word == keys.ASCEND_910C and cfg.super_pod):
            return count
        if count == 1:
            for name in ("limits", "requests"):
                if name == "limits" or common.has_section(container, name):
                    section = common.section_of(container, name)
                    if name == "limits" or cfg.resource_name in section:
                        section[cfg.resource_name] = 2
            return 2
        if count % 2:
            raise RequestInvalid(
                where,
                cfg.resource_name,
                f"Ascend910C device request must be 1 or 2*n, got {count}",
            )
        return count

    def _trim_memory(self, container: dict[str, object], count: int, where: str) -> None:
        cfg = self.config
        asked = resources.bounded(container, cfg.resource_memory_name, where, 0)
        memory = cfg.memory_allocatable if not asked else self.trim(asked)
        if memory is None:
            raise RequestInvalid(where, cfg.resource_memory_name, f"{asked} is invalid")
        if count > 1 and memory != cfg.memory_allocatable:
            raise RequestInvalid(
                where, cfg.resource_memory_name, "vNPU not supported for multiple devices"
            )
        common.section_of(container, "limits")[cfg.resource_memory_name] = memory
        if common.has_section(container, "requests"):
            common.section_of(container, "requests")[cfg.resource_memory_name] = memory

    def trim(self, memory: int) -> int | None:
        """The smallest template ≥ ``memory``; the whole card up to its capacity; else None."""
        template = self.template_for(memory)
        if template:
            return next(t.memory for t in self.config.templates if t.name == template)
        if memory <= self.config.memory_capacity:
            return self.config.memory_allocatable
        return None

    def template_for(self, memory: int) -> str:
        """HAMi's trimMemory template name ("" for the whole card)."""
        for template in self.config.sorted_templates():
            if memory <= template.memory:
                return template.name
        return ""

    # --- node inventory ------------------------------------------------------------------------------

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        register = self.spec.register
        value = annotations.get(register)
        if not value:
            return ()
        node_flag = annotations.get(keys.ASCEND_NODE_HAMI_CORE)
        soft = self.hami_vnpu_core if node_flag is None else node_flag == "true"
        infos = codec.decode_node_devices(value, register)
        return tuple(
            _extend(
                common.device_from_info(info, self.key),
                codec.custom_int(info, keys.ASCEND_NETWORK_ID),
                soft,
            )
            for info in infos
        )

    # --- fit -----------------------------------------------------------------------------------------

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        soft = ctx.annotations.get(keys.ASCEND_VNPU_MODE, "") == keys.MODE_HAMI_CORE
        if soft:
            if not all(_ascend(c.device).hami_core for c in candidates):
                return Unfit(counts={Reason.MODE_NOT_FIT: len(candidates)}, total=len(candidates))
            candidates = [_whole_core(c) for c in candidates]
        topo = self._topology_chip() and all(_network(c) is not None for c in candidates)
        if self._pairs() and request.nums > 1:
            result = self._fit_pairs(candidates, request, ctx)
        elif topo and request.nums > 1:
            result = self._fit_network(candidates, request, ctx)
        else:
            result = slice_fit(candidates, request, ctx, self.spec.rules)
        if isinstance(result, Unfit) or not soft:
            return result
        return tuple(dataclasses.replace(p, note=keys.MODE_HAMI_CORE) for p in result)

    def _topology_chip(self) -> bool:
        return self.config.common_word.startswith("Ascend910")

    def _pairs(self) -> bool:
        return self.config.common_word == keys.ASCEND_910C

    def _fitting(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[list[tuple[Candidate, Pick]], Counter[str]]:
        """Every candidate that could take one device of the request on its own."""
        one = dataclasses.replace(request, nums=1)
        found: list[tuple[Candidate, Pick]] = []
        reasons: Counter[str] = Counter()
        for cand in candidates:
            result = slice_fit([cand], one, ctx, self.spec.rules)
            if isinstance(result, Unfit):
                reasons.update(result.counts)
            else:
                found.append((cand, result[0]))
        return found, reasons

    def _fit_network(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """Take whole NetworkID groups, largest first, until the request is met."""
        found, reasons = self._fitting(candidates, request, ctx)
        if len(found) < request.nums:
            return countfit.short(reasons, len(found), len(candidates))
        groups: dict[int | None, list[Pick]] = {}
        for cand, pick in found:
            groups.setdefault(_network(cand), []).append(pick)
        ordered = sorted(groups.values(), key=len, reverse=True)
        return tuple(p for group in ordered for p in group)[: request.nums]

    def _fit_pairs(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """910C: whole physical cards (NPU index // 2) with both NPUs free, largest groups first."""
        found, reasons = self._fitting(candidates, request, ctx)
        cards: dict[int, list[tuple[Candidate, Pick]]] = {}
        for cand, pick in found:
            cards.setdefault(cand.device.index // 2, []).append((cand, pick))
        whole = [pair for pair in cards.values() if len(pair) == 2]
        by_net: dict[int | None, list[list[tuple[Candidate, Pick]]]] = {}
        for pair in whole:
            by_net.setdefault(_network(pair[0][0]), []).append(pair)
        ordered = [p for group in sorted(by_net.values(), key=len, reverse=True) for p in group]
        picks = [pick for pair in ordered for _, pick in pair]
        if len(picks) < request.nums:
            return countfit.short(reasons, len(picks), len(candidates))
        return tuple(picks[: request.nums])

    def held(self, device: Device, usage: DeviceUsage) -> Held:
        """AI cores of the card: a template's share of them follows its memory share (HAMi's
        templates are sized so), as its allocation records no cores; hami-core mode records
        a percentage."""
        if _ascend(device).hami_core:
            return Held(usage.usedmem, usage.usedcores, 100)
        cores = usage.usedcores
        if usage.used and not cores and device.memory > 0:
            cores = min(round(device.cores * usage.usedmem / device.memory), device.cores)
        return Held(usage.usedmem, cores, device.cores, "AI cores")

    # --- score and annotations ---------------------------------------------------------------------

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        """910*: 10 × Σ containers (largest same-NetworkID group / devices); 0 without NetworkIDs."""
        if not self._topology_chip():
            return 0.0
        total = 0.0
        for container in picks:
            if not container:
                continue
            nets = [_ascend(node.devices[p.position]).network_id for p in container]
            if any(n is None for n in nets):
                return 0.0
            total += max(Counter(nets).values()) / len(container)
        return 10 * total

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = SlicedVendor.pod_annotations(self, devices, picks)
        runtime = [
            codec.AscendRuntime(
                uuid=pick.device.uuid,
                temp=""
                if pick.note == keys.MODE_HAMI_CORE
                else self.template_for(pick.device.usedmem),
                memory=pick.device.usedmem,
                core=pick.device.usedcores,
            )
            for container in picks
            for pick in container
        ]
        out[self.runtime_key] = codec.encode_ascend_runtime(runtime)
        return out


def _extend(device: Device, network_id: int | None, hami_core: bool) -> AscendDevice:
    return common.retyped(device, AscendDevice, network_id=network_id, hami_core=hami_core)


def _ascend(device: Device) -> AscendDevice:
    return device if isinstance(device, AscendDevice) else _extend(device, None, False)


def _network(cand: Candidate) -> int | None:
    return _ascend(cand.device).network_id


def _whole_core(cand: Candidate) -> Candidate:
    """hami-core mode: a device's core capacity counts as 100."""
    return dataclasses.replace(cand, device=dataclasses.replace(cand.device, cores=100))
