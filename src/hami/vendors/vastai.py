"""Vastai: whole devices, or dies grouped by physical card (AIC) in die mode (§4.14)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import annotations as codec
from hami.api import keys
from hami.api.annotations import allocated_key, to_allocate_key
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node
from hami.core.vendor import Candidate, Pick
from hami.vendors import common, countfit
from hami.vendors.config import VastaiConfig
from hami.vendors.family import COUNT_ONLY, CountVendor, Spec


@dataclass(frozen=True, slots=True)
class VastaiDevice(Device):
    die_mode: bool = False
    aic: str | None = None  # physical card of a die


SPEC = Spec(
    key=keys.VASTAI_VENDOR,
    name="Vastai",
    word="VA",
    aliases=("Vastaitech",),
    register=keys.VASTAI_REGISTER,
    handshake=keys.VASTAI_HANDSHAKE,
    to_allocate=to_allocate_key(keys.VASTAI_VENDOR),
    allocated=allocated_key(keys.VASTAI_VENDOR),
    names=COUNT_ONLY,
    uuid_keys=(keys.VASTAI_USE_UUID, keys.VASTAI_NOUSE_UUID),
)


@dataclass(frozen=True, slots=True)
class VastaiVendor(CountVendor):
    config: VastaiConfig = field(default_factory=VastaiConfig)
    spec = SPEC

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        value = annotations.get(keys.VASTAI_REGISTER)
        if not value:
            return ()
        out = []
        for info in codec.decode_node_devices(value, keys.VASTAI_REGISTER):
            base = common.device_from_info(info, self.key)
            aic = info.custominfo.get(keys.VASTAI_AIC)
            out.append(
                common.retyped(
                    base,
                    VastaiDevice,
                    cores=100,  # HAMi forces 100 ("only for calscore use")
                    die_mode=info.custominfo.get(keys.VASTAI_STRATEGY) == keys.VASTAI_DIE,
                    aic=aic if isinstance(aic, str) else None,
                )
            )
        return tuple(out)

    def blocker(self, candidates: Sequence[Candidate]) -> countfit.Blocked | None:
        """Die mode: a die whose physical card (AIC) already holds a task is taken under mutex."""
        if not (candidates and _die(candidates[0].device).die_mode):
            return None
        occupied = {_die(c.device).aic for c in candidates if c.usage.used > 0}
        return lambda cand: _die(cand.device).aic in occupied

    def order(self, found: list[Candidate], request: ContainerRequest) -> list[Candidate]:
        if request.nums > 1 and _die(found[0].device).die_mode:
            return _best_cards(found)
        return found

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
