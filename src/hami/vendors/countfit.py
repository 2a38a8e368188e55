"""The count-only fit of Biren and Vastai: health, UUID filter, slots and mutex (§4.14).

Memory and cores are not checked; an allocation records 0 of both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from hami.api.types import ContainerDevice
from hami.core.policy import MUTEX
from hami.core.status import Reason, Unfit
from hami.core.vendor import Candidate, FitContext, Pick
from hami.vendors import common

Blocked = Callable[[Candidate], bool]  # extra mutex conflict (e.g. a sibling die in use)


def usable(
    candidates: Sequence[Candidate],
    ctx: FitContext,
    uuid_keys: tuple[str, str],
    blocked: Blocked | None = None,
) -> tuple[list[Candidate], Counter[str]]:
    """The candidates that pass every check, in try order, and why the others did not."""
    reasons: Counter[str] = Counter()
    found = []
    mutex = MUTEX in ctx.policy
    for cand in candidates:
        dev, use = cand.device, cand.usage
        if not dev.health:
            reasons[Reason.CARD_NOT_HEALTH] += 1
        elif not common.uuid_allowed(dev.uuid, ctx.annotations, *uuid_keys):
            reasons[Reason.CARD_UUID_MISMATCH] += 1
        elif dev.count <= use.used:
            reasons[Reason.CARD_TIME_SLICING_EXHAUSTED] += 1
        elif mutex and (use.used > 0 or (blocked is not None and blocked(cand))):
            reasons[Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT] += 1
        else:
            found.append(cand)
    return found, reasons


def pick(cand: Candidate, label: str) -> Pick:
    used = ContainerDevice(uuid=cand.device.uuid, type=label, usedmem=0, usedcores=0)
    return Pick(position=cand.position, device=used, index=cand.device.index)


def short(reasons: Counter[str], found: int, total: int) -> Unfit:
    if found:
        reasons[Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST] += found
    return Unfit(counts=dict(reasons), total=total)
