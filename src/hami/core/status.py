"""Fit results and HAMi's reason vocabulary (wire-format.md §3.8)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """HAMi's reason names, spelled exactly as HAMi spells them (including `CardUuidMismatch`)."""

    CARD_TYPE_MISMATCH = "CardTypeMismatch"
    CARD_UUID_MISMATCH = "CardUuidMismatch"
    CARD_TIME_SLICING_EXHAUSTED = "CardTimeSlicingExhausted"
    CARD_COMPUTE_UNITS_EXHAUSTED = "CardComputeUnitsExhausted"
    CARD_INSUFFICIENT_MEMORY = "CardInsufficientMemory"
    CARD_INSUFFICIENT_CORE = "CardInsufficientCore"
    CARD_NOT_HEALTH = "CardNotHealth"
    CARD_CORDONED = "CardCordoned"
    NUMA_NOT_FIT = "NumaNotFit"
    EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT = "ExclusiveDeviceAllocateConflict"
    CARD_NOT_FOUND_CUSTOM_FILTER_RULE = "CardNotFoundCustomFilterRule"
    CARD_MIG_TOPOLOGY_INFEASIBLE = "CardMigTopologyInfeasible"
    NODE_INSUFFICIENT_DEVICE = "NodeInsufficientDevice"
    ALLOCATED_CARDS_INSUFFICIENT_REQUEST = "AllocatedCardsInsufficientRequest"
    NODE_UNFIT_POD = "NodeUnfitPod"
    NODE_FIT_POD = "NodeFitPod"
    RESOURCE_QUOTA_NOT_FIT = "ResourceQuotaNotFit"
    MODE_NOT_FIT = "ModeNotFit"
    # MetaX sGPU's own (wire-format.md §3.8, §4.9)
    CARD_UNHEALTHY = "CardUnhealthy"
    CARD_QOS_POLICY_MISMATCH = "CardQosPolicyMismatch"
    CARD_APP_CLASS_MISMATCH = "CardAppClassMismatch"


NODE_UNREGISTERED = "node unregistered"
DEVICE_TYPE_NOT_FOUND = "Device type not found"


@dataclass(frozen=True, slots=True)
class Unfit:
    """Why one node cannot take the pod: per-reason device counts out of ``total`` candidates."""

    counts: Mapping[str, int]
    total: int
    message: str = ""  # a free-form reason (e.g. "node unregistered") instead of counts

    @classmethod
    def because(cls, message: str) -> Unfit:
        return cls(counts={}, total=0, message=message)

    def text(self) -> str:
        """HAMi's `failedNodes` text: ``n/total Reason`` entries, sorted, joined by ", "."""
        if self.message:
            return self.message
        return ", ".join(sorted(f"{n}/{self.total} {reason}" for reason, n in self.counts.items()))
