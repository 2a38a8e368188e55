"""Codec golden, tolerance and malformed-input tests — scoring weights, MIG allocations and pair scores (wire-format.md §2.1, §2.3, §2.8, §3.9)."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.api.annotations import (
    decode_mig_allocations,
    decode_pair_scores,
    decode_scoring_weights,
    encode_mig_allocations,
    encode_pair_scores,
    encode_scoring_weights,
)
from hami.api.types import (
    MigAllocation,
    MigPlacement,
    PairScores,
    ScoringWeights,
)
from tests.api.codec_helpers import expect_error

# ------------------------------------------------------------------------------------------------
# §2.1 device scoring weights

W = keys.DEVICE_SCORING_WEIGHTS


def test_scoring_weights_golden() -> None:
    weights = decode_scoring_weights("slot=1,core=1,memory=3")
    assert weights == ScoringWeights(slot=1, core=1, memory=3)
    assert encode_scoring_weights(weights) == "slot=1,core=1,memory=3"


@pytest.mark.parametrize(
    "value",
    ["memory=3,slot=1,core=1", "core=1,memory=3,slot=1", " slot=1 , core=1 , memory=3 "],
)
def test_scoring_weights_any_order(value: str) -> None:
    assert decode_scoring_weights(value) == ScoringWeights(1, 1, 3)


def test_scoring_weights_absent_and_zeros() -> None:
    assert decode_scoring_weights(None) == ScoringWeights(1, 1, 1)
    assert decode_scoring_weights("slot=0,core=0,memory=1") == ScoringWeights(0, 0, 1)


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("slot=1,core=-1,memory=3", "core=-1", '"core" weight must not be negative'),
        ("slot=1,slot=2,memory=3", "slot=2", '"slot" weight given twice'),
        ("slot=1,core=1", "slot=1,core=1", "expected exactly slot=N,core=N,memory=N"),
        ("slot=1,core=1,memory=1,slot=1", "slot=1,core=1,memory=1,slot=1", "expected exactly"),
        ("", "", "expected exactly"),
        ("slot=1,core=1,gpu=1", "gpu=1", "items must be slot=N, core=N or memory=N"),
        ("slot=1,core=1,memory", "memory", "items must be"),
        ("slot=1,core=x,memory=1", "core=x", "\"core\" weight 'x' is not an integer"),
        ("slot=1,core=,memory=1", "core=", "is not an integer"),
        ("slot=1,core=1,memory=2147483648", "memory=2147483648", "does not fit in int32"),
        (
            "slot=0,core=0,memory=0",
            "slot=0,core=0,memory=0",
            "at least one weight must be positive",
        ),
    ],
)
def test_scoring_weights_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_scoring_weights, value, W, piece, why)


# ------------------------------------------------------------------------------------------------
# §2.8 MIG allocations

MIG = keys.MIG_ALLOCATIONS
MIG_REALISED = (
    '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-xxxxxxxx","profile":"2g.10gb",'
    '"placement":{"start":2,"size":2},"migUUID":"MIG-xxxxxxxx","gpuInstanceID":4,'
    '"computeInstanceID":0}]'
)
MIG_RESERVED = (
    '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-xxxxxxxx","profile":"2g.10gb",'
    '"placement":{"start":2,"size":2}}]'
)


def test_mig_allocation_realised_golden() -> None:
    allocations = decode_mig_allocations(MIG_REALISED)
    assert allocations == (
        MigAllocation(
            container_index=0,
            device_index=0,
            gpu_uuid="GPU-xxxxxxxx",
            profile="2g.10gb",
            placement=MigPlacement(start=2, size=2),
            mig_uuid="MIG-xxxxxxxx",
            gpu_instance_id=4,
            compute_instance_id=0,
        ),
    )
    assert encode_mig_allocations(allocations) == MIG_REALISED


def test_mig_allocation_reservation_golden() -> None:
    allocations = decode_mig_allocations(MIG_RESERVED)
    assert allocations == (MigAllocation(0, 0, "GPU-xxxxxxxx", "2g.10gb", MigPlacement(2, 2)),)
    assert allocations[0].mig_uuid is None and allocations[0].gpu_instance_id is None
    assert encode_mig_allocations(allocations) == MIG_RESERVED
    assert decode_mig_allocations("[]") == ()
    assert encode_mig_allocations([]) == "[]"


def test_mig_allocation_tolerance() -> None:
    text = (
        '[{"Placement":{"SIZE":1,"Start":6},"PROFILE":"1g.5gb","GPUUUID":"GPU-y",'
        '"DeviceIndex":1,"ContainerIndex":2},'
        '{"gpuUUID":"GPU-y","profile":"1g.5gb","placement":{"size":1}}]'
    )
    assert decode_mig_allocations(text) == (
        MigAllocation(2, 1, "GPU-y", "1g.5gb", MigPlacement(6, 1)),
        MigAllocation(0, 0, "GPU-y", "1g.5gb", MigPlacement(0, 1)),
    )


def _mig(extra: str = "", ci: int = 0, di: int = 0, size: int = 2) -> str:
    return (
        f'{{"containerIndex":{ci},"deviceIndex":{di},"gpuUUID":"GPU-x","profile":"2g.10gb",'
        f'"placement":{{"start":0,"size":{size}}}{extra}}}'
    )


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("[", "[", "not valid JSON"),
        ('{"containerIndex":0}', '{"containerIndex":0}', "expected a JSON array"),
        ("null", "null", "expected a JSON array"),
        ("[7]", "entry #0", "expected a JSON object"),
        (
            "[" + _mig(',"migUUID":"MIG-1"') + "]",
            "entry #0",
            "migUUID, gpuInstanceID and computeInstanceID must be all set or all absent",
        ),
        (
            "[" + _mig(',"gpuInstanceID":1,"computeInstanceID":0') + "]",
            "entry #0",
            "all set or all absent",
        ),
        (
            "[" + _mig(',"migUUID":"MIG-1","gpuInstanceID":1') + "]",
            "entry #0",
            "all set or all absent",
        ),
        (
            "[" + _mig() + "," + _mig(ci=1) + "," + _mig() + "]",
            "entry #2",
            "duplicate (containerIndex, deviceIndex) (0, 0)",
        ),
        ("[" + _mig(size=0) + "]", "entry #0", "placement.size must not be 0"),
        ('[{"gpuUUID":"GPU-x","profile":"2g.10gb"}]', "entry #0", "placement.size must not be 0"),
        ("[" + _mig(ci=-1) + "]", "entry #0", "indexes must be non-negative"),
        ("[" + _mig(di=-3) + "]", "entry #0", "indexes must be non-negative"),
        ('[{"profile":"2g.10gb","placement":{"size":1}}]', "entry #0", "gpuUUID and profile"),
        ('[{"gpuUUID":"GPU-x","placement":{"size":1}}]', "entry #0", "must be non-empty"),
        (
            '[{"gpuUUID":1,"profile":"p","placement":{"size":1}}]',
            "entry #0",
            "gpuuuid 1 is not a string",
        ),
        (
            '[{"gpuUUID":"g","profile":"p","placement":{"size":"2"},"containerIndex":"a"}]',
            "entry #0",
            "containerIndex 'a' is not an integer",
        ),
        ('[{"gpuUUID":"g","profile":"p","placement":[1]}]', "entry #0", "expected a JSON object"),
        (
            '[{"gpuUUID":"g","profile":"p","placement":{"size":4294967296}}]',
            "entry #0",
            "placement.size 4294967296 does not fit in int32",
        ),
    ],
)
def test_mig_allocations_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_mig_allocations, value, MIG, piece, why)


# ------------------------------------------------------------------------------------------------
# §2.3 / §3.9 pair scores

SCORE = keys.NVIDIA_SCORE
PAIR_EXAMPLE = '[{"uuid":"GPU-a","score":{"GPU-b":200,"GPU-c":20}}]'


def test_pair_scores_golden() -> None:
    pairs = decode_pair_scores(PAIR_EXAMPLE)
    assert pairs == (PairScores(uuid="GPU-a", scores={"GPU-b": 200, "GPU-c": 20}),)
    assert encode_pair_scores(pairs) == PAIR_EXAMPLE


def test_pair_scores_encode_sorts_map_keys_like_go() -> None:
    pairs = [PairScores("GPU-a", {"GPU-c": 20, "GPU-b": 200})]
    assert encode_pair_scores(pairs) == PAIR_EXAMPLE


def test_pair_scores_tolerance() -> None:
    text = (
        '[{"SCORE":{"GPU-b":1800},"UUID":"GPU-a"},{"uuid":"GPU-b"},{"uuid":"GPU-c","score":null}]'
    )
    assert decode_pair_scores(text) == (
        PairScores("GPU-a", {"GPU-b": 1800}),
        PairScores("GPU-b", {}),
        PairScores("GPU-c", {}),
    )
    assert decode_pair_scores("[]") == ()


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("[{", "[{", "not valid JSON"),
        ('{"uuid":"GPU-a"}', '{"uuid":"GPU-a"}', "expected a JSON array"),
        ('["GPU-a"]', "entry #0", "expected a JSON object"),
        ('[{"score":{}}]', "entry #0", "uuid must be non-empty"),
        ('[{"uuid":"GPU-a","score":[1]}]', "GPU-a", "score must be a JSON object"),
        (
            '[{"uuid":"GPU-a","score":{"GPU-b":"high"}}]',
            "GPU-a",
            "score of GPU-b 'high' is not an integer",
        ),
        ('[{"uuid":"GPU-a","score":{"GPU-b":2.5}}]', "GPU-a", "is not an integer"),
    ],
)
def test_pair_scores_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_pair_scores, value, SCORE, piece, why)
