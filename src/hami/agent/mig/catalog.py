"""MIG profile tables of the GPU models the fake backend models, and NVML's error codes.

Placements are in memory slices (8 per GPU), as ``nvmlDeviceGetGpuInstancePossiblePlacements``
reports them; ``compute`` is the number of the GPU's 7 compute slices a profile takes; ``sms``
its streaming multiprocessors (``core`` = ceil(sms × 100 / full-GPU sms), §5.7). Memory sizes
are what ``nvmlDeviceGetGpuInstanceProfileInfo`` reports (``memorySizeMB``) on these models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hami.api.types import MigPlacement, MigProfile

# NVML return codes (nvml.h) the MIG paths produce.
NVML_ERROR_INVALID_ARGUMENT: Final = 2
NVML_ERROR_NOT_SUPPORTED: Final = 3
NVML_ERROR_NOT_FOUND: Final = 6
NVML_ERROR_IN_USE: Final = 19
NVML_ERROR_INSUFFICIENT_RESOURCES: Final = 23
NVML_ERROR_UNKNOWN: Final = 999

ERROR_NAMES: Final = {
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_IN_USE: "In use by another client",
    NVML_ERROR_INSUFFICIENT_RESOURCES: "Insufficient Resources",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}

MEMORY_SLICES: Final = 8
COMPUTE_SLICES: Final = 7
PROFILE_NAME = re.compile(r"^[1-8]g\.[0-9]+gb(\+[a-z]+)?$")


class MigError(Exception):
    """An NVML MIG call failed; ``code`` is the NVML return code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message}: NVML error {code} ({ERROR_NAMES.get(code, 'Unknown')})")
        self.code = code


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    name: str
    nvml_id: int  # NVML_GPU_INSTANCE_PROFILE_*
    memory_mb: int
    compute: int
    sms: int
    starts: tuple[int, ...]
    size: int

    def placements(self) -> tuple[MigPlacement, ...]:
        return tuple(MigPlacement(s, self.size) for s in self.starts)


def _geometry(
    names: Sequence[str], memory: Sequence[int], sms: Sequence[int]
) -> tuple[ProfileSpec, ...]:
    """The A100/H100 geometry: 1g (7 placements), 1g with double memory (4), 2g (3), 3g (2),
    4g (1), 7g (1); ``names``, ``memory`` and ``sms`` in that order."""
    shape = (  # nvml id, compute slices, starts, size
        (0, 1, tuple(range(7)), 1),
        (9, 1, (0, 2, 4, 6), 2),
        (1, 2, (0, 2, 4), 2),
        (2, 3, (0, 4), 4),
        (3, 4, (0,), 4),
        (4, 7, (0,), 8),
    )
    return tuple(
        ProfileSpec(name, nvml_id, mb, compute, sm, starts, size)
        for name, mb, sm, (nvml_id, compute, starts, size) in zip(
            names, memory, sms, shape, strict=True
        )
    )


A100_SMS: Final = (14, 14, 28, 42, 56, 98)
A100_40GB: Final = _geometry(
    ("1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
    (4864, 9856, 9984, 20096, 20096, 40320),
    A100_SMS,
)
A100_80GB: Final = _geometry(
    ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    (9728, 19968, 19968, 40192, 40192, 80384),
    A100_SMS,
)
H100_80GB: Final = _geometry(
    ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    (9984, 20096, 20096, 40448, 40448, 80896),
    (16, 26, 32, 60, 64, 132),
)


# model substring → profiles; the first match wins, so the more specific names come first
MODELS: Final[tuple[tuple[str, tuple[ProfileSpec, ...]], ...]] = (
    ("A100-SXM4-80GB", A100_80GB),
    ("A100-PCIE-80GB", A100_80GB),
    ("A100 80GB", A100_80GB),
    ("A100-SXM4-40GB", A100_40GB),
    ("A100-PCIE-40GB", A100_40GB),
    ("A100", A100_40GB),
    ("H100 80GB", H100_80GB),
    ("H100-SXM5-80GB", H100_80GB),
    ("H100", H100_80GB),
)


def specs_for(model: str) -> tuple[ProfileSpec, ...]:
    """The MIG profiles of a GPU model; () for a model without MIG (T4, V100, …)."""
    for needle, specs in MODELS:
        if needle in model:
            return specs
    return ()


# Profile names of the MIG GPUs HAMi's chart allow-lists by default (wire-format.md §1.4):
# A30, A100, H100 80/94GB, H20/GH200, H200, B200, RTX PRO 6000 Blackwell.
OTHER_MODELS_PROFILES: Final = frozenset(
    {
        *("1g.6gb", "2g.12gb", "4g.24gb", "7g.79gb"),
        *("1g.12gb", "2g.24gb", "3g.47gb", "7g.94gb", "3g.48gb", "7g.96gb"),
        *("1g.18gb", "2g.35gb", "3g.71gb", "7g.141gb"),
        *("1g.23gb", "2g.45gb", "3g.90gb", "7g.180gb"),
        *("1g.24gb", "2g.48gb", "4g.96gb"),
    }
)


def known_profile_names() -> frozenset[str]:
    """Every MIG profile name hami knows of (the modelled GPUs and HAMi's defaults)."""
    return frozenset(s.name for _, specs in MODELS for s in specs) | OTHER_MODELS_PROFILES


def to_profiles(specs: Sequence[ProfileSpec]) -> tuple[MigProfile, ...]:
    """The registration form (§2.6 `migProfiles`)."""
    full = max((s.sms for s in specs), default=0)
    return tuple(
        MigProfile(
            name=s.name,
            memory_mb=s.memory_mb,
            core=math.ceil(s.sms * 100 / full) if full else 0,
            slice_count=s.compute,
            placements=s.placements(),
        )
        for s in specs
    )
