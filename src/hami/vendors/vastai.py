"""Vastai: whole devices, or dies grouped by physical card (AIC) in die mode (§4.14)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import annotations as codec
from hami.api import keys
from hami.api.annotations import allocated_key, to_allocate_key
from hami.api.types import PodDevices
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node
from hami.core.status import Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick, RegistrationHealth
from hami.vendors import common, countfit, resources
from hami.vendors.config import CountConfig


@dataclass(frozen=True, slots=True)
class VastaiDevice(Device):
    die_mode: bool = False
    aic: str | None = None  # physical card of a die


def _default() -> CountConfig:
    return CountConfig("vastaitech.com/va")


@dataclass(frozen=True, slots=True)
class VastaiVendor:
    config: CountConfig = field(default_factory=_default)

    @property
    def key(self) -> str:
        return keys.VASTAI_VENDOR

    @property
    def registration_health(self) -> RegistrationHealth:
        """Handshake and liveness resource for the scheduler's registration loop (§2.7)."""
        return RegistrationHealth(
            self.config.resource_count_name, handshake_key=keys.VASTAI_HANDSHAKE
        )

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        return common.admit_if_counted(self, self.config.resource_count_name, container, where)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        name = self.config.resource_count_name
        nums = resources.bounded(container, name, where, 0, common.INT32_MAX)
        return ContainerRequest(vendor=self.key, nums=nums, mem_pct=100) if nums else None

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        value = annotations.get(keys.VASTAI_REGISTER)
        if not value:
            return ()
        out = []
        for info in codec.decode_node_devices(value, keys.VASTAI_REGISTER):
            base = common.device_from_info(info, self.key)
            aic = info.custominfo.get(keys.VASTAI_AIC)
            out.append(
                VastaiDevice(
                    uuid=base.uuid,
                    vendor=base.vendor,
                    type=base.type,
                    count=base.count,
                    memory=base.memory,
                    cores=100,  # HAMi forces 100 ("only for calscore use")
                    index=base.index,
                    numa=base.numa,
                    mode=base.mode,
                    health=base.health,
                    die_mode=info.custominfo.get(keys.VASTAI_STRATEGY) == keys.VASTAI_DIE,
                    aic=aic if isinstance(aic, str) else None,
                )
            )
        return tuple(out)

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        die_mode = bool(candidates) and _die(candidates[0].device).die_mode
        occupied = {_die(c.device).aic for c in candidates if c.usage.used > 0}

        def blocked(cand: Candidate) -> bool:
            return die_mode and _die(cand.device).aic in occupied

        keys_ = (keys.VASTAI_USE_UUID, keys.VASTAI_NOUSE_UUID)
        found, reasons = countfit.usable(candidates, ctx, keys_, blocked)
        if len(found) < request.nums:
            return countfit.short(reasons, len(found), len(candidates))
        if die_mode and request.nums > 1:
            found = _best_cards(found)
        return tuple(countfit.pick(c, self.key) for c in found[: request.nums])

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        """Die mode: Σ containers (largest same-card group / dies); 0 otherwise."""
        score = 0.0
        for container in picks:
            if not container:
                continue
            dies = [_die(node.devices[p.position]) for p in container]
            if any(not d.die_mode or d.aic is None for d in dies):
                return 0.0
            score += max(Counter(d.aic for d in dies).values()) / len(dies)
        return score

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return common.device_list_annotations(
            devices, to_allocate_key(self.key), allocated_key(self.key)
        )

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, allocated_key(self.key))


def _die(device: Device) -> VastaiDevice:
    if isinstance(device, VastaiDevice):
        return device
    return VastaiDevice(
        uuid=device.uuid,
        vendor=device.vendor,
        type=device.type,
        count=device.count,
        memory=device.memory,
        cores=device.cores,
    )


def _best_cards(found: Sequence[Candidate]) -> list[Candidate]:
    """Dies of the cards with most free dies first (stable within a card)."""
    by_card: dict[str | None, list[Candidate]] = {}
    for cand in found:
        by_card.setdefault(_die(cand.device).aic, []).append(cand)
    cards = sorted((a for a in by_card if a is not None), key=lambda a: -len(by_card[a]))
    return [c for aic in cards for c in by_card[aic]]
