"""Device scoring weights (§2.1, §3.18), MIG allocations (§2.8), pair scores (§2.3, §3.9)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from hami.api import keys
from hami.api.annotations._base import (
    _go_map,
    clip,
    go_json,
    int_field,
    load_json,
)
from hami.api.annotations.devices import (
    _lower_keys,
    str_field,
)
from hami.api.errors import WireFormatError
from hami.api.types import (
    MigAllocation,
    MigPlacement,
    PairScores,
    ScoringWeights,
)

# ------------------------------------------------------------------------------------------------
# device scoring weights (§2.1, §3.18)


def decode_scoring_weights(
    value: str | None, key: str = keys.DEVICE_SCORING_WEIGHTS
) -> ScoringWeights:
    """``slot=1,core=1,memory=3``: exactly the three keys, non-negative, at least one positive."""
    if value is None:
        return ScoringWeights()
    items = value.split(",")
    if len(items) != 3:
        raise WireFormatError(key, value, "expected exactly slot=N,core=N,memory=N")
    weights: dict[str, int] = {}
    for item in items:
        name, sep, number = item.partition("=")
        name = name.strip()
        if not sep or name not in ("slot", "core", "memory"):
            raise WireFormatError(key, item, "items must be slot=N, core=N or memory=N")
        if name in weights:
            raise WireFormatError(key, item, f'"{name}" weight given twice')
        weight = int_field(key, item, f'"{name}" weight', number)
        if weight < 0:
            raise WireFormatError(key, item, f'"{name}" weight must not be negative')
        weights[name] = weight
    if not any(weights.values()):
        raise WireFormatError(key, value, "at least one weight must be positive")
    return ScoringWeights(slot=weights["slot"], core=weights["core"], memory=weights["memory"])


def encode_scoring_weights(weights: ScoringWeights) -> str:
    return f"slot={weights.slot},core={weights.core},memory={weights.memory}"


# ------------------------------------------------------------------------------------------------
# MIG allocations (§2.8)


def encode_mig_allocations(allocations: Sequence[MigAllocation]) -> str:
    out = []
    for a in allocations:
        item: dict[str, object] = {
            "containerIndex": a.container_index,
            "deviceIndex": a.device_index,
            "gpuUUID": a.gpu_uuid,
            "profile": a.profile,
            "placement": {"start": a.placement.start, "size": a.placement.size},
        }
        if a.mig_uuid:
            item["migUUID"] = a.mig_uuid
        if a.gpu_instance_id is not None:
            item["gpuInstanceID"] = a.gpu_instance_id
        if a.compute_instance_id is not None:
            item["computeInstanceID"] = a.compute_instance_id
        out.append(item)
    return go_json(out)


def decode_mig_allocations(
    value: str, key: str = keys.MIG_ALLOCATIONS
) -> tuple[MigAllocation, ...]:
    raw = load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, clip(value), "expected a JSON array")
    seen: set[tuple[int, int]] = set()
    result = []
    for position, item in enumerate(cast(list[object], raw)):
        piece = f"entry #{position}"
        fields = _lower_keys(key, piece, item)
        allocation = _mig_allocation(key, piece, fields)
        slot = (allocation.container_index, allocation.device_index)
        if slot in seen:
            raise WireFormatError(key, piece, f"duplicate (containerIndex, deviceIndex) {slot}")
        seen.add(slot)
        result.append(allocation)
    return tuple(result)


def _mig_allocation(key: str, piece: str, fields: dict[str, object]) -> MigAllocation:
    container_index = int_field(key, piece, "containerIndex", fields.get("containerindex", 0))
    device_index = int_field(key, piece, "deviceIndex", fields.get("deviceindex", 0))
    if container_index < 0 or device_index < 0:
        raise WireFormatError(key, piece, "indexes must be non-negative")
    gpu_uuid = str_field(key, piece, fields, "gpuuuid")
    profile = str_field(key, piece, fields, "profile")
    if not gpu_uuid or not profile:
        raise WireFormatError(key, piece, "gpuUUID and profile must be non-empty")
    place = _lower_keys(key, piece, fields.get("placement") or {})
    placement = MigPlacement(
        start=int_field(key, piece, "placement.start", place.get("start", 0)),
        size=int_field(key, piece, "placement.size", place.get("size", 0)),
    )
    if placement.size == 0:
        raise WireFormatError(key, piece, "placement.size must not be 0")
    mig_uuid = str_field(key, piece, fields, "miguuid") or None
    gi = fields.get("gpuinstanceid")
    ci = fields.get("computeinstanceid")
    present = [mig_uuid is not None, gi is not None, ci is not None]
    if any(present) and not all(present):
        raise WireFormatError(
            key, piece, "migUUID, gpuInstanceID and computeInstanceID must be all set or all absent"
        )
    return MigAllocation(
        container_index=container_index,
        device_index=device_index,
        gpu_uuid=gpu_uuid,
        profile=profile,
        placement=placement,
        mig_uuid=mig_uuid,
        gpu_instance_id=None
        if gi is None
        else int_field(key, piece, "gpuInstanceID", gi, bits32=False),
        compute_instance_id=None
        if ci is None
        else int_field(key, piece, "computeInstanceID", ci, bits32=False),
    )


# ------------------------------------------------------------------------------------------------
# topology pair scores (§2.3, §3.9)


def decode_pair_scores(value: str, key: str = keys.NVIDIA_SCORE) -> tuple[PairScores, ...]:
    raw = load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, clip(value), "expected a JSON array")
    result = []
    for position, item in enumerate(cast(list[object], raw)):
        piece = f"entry #{position}"
        fields = _lower_keys(key, piece, item)
        uuid = str_field(key, piece, fields, "uuid")
        if not uuid:
            raise WireFormatError(key, piece, "uuid must be non-empty")
        score_raw = fields.get("score") or {}
        if not isinstance(score_raw, dict):
            raise WireFormatError(key, uuid, "score must be a JSON object")
        scores = {
            str(peer): int_field(key, uuid, f"score of {peer}", s)
            for peer, s in cast(dict[str, object], score_raw).items()
        }
        result.append(PairScores(uuid=uuid, scores=scores))
    return tuple(result)


def encode_pair_scores(pairs: Sequence[PairScores]) -> str:
    return go_json([{"uuid": p.uuid, "score": _go_map(p.scores)} for p in pairs])
