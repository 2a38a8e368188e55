"""MIG profile and placement choice (wire-format.md §3.8 step 15, §3.10)."""

from __future__ import annotations

from collections.abc import Sequence

from hami.api.types import MigPlacement, MigProfile
from hami.core.model import MigReservation


def _placement_order(profile: MigProfile) -> list[MigPlacement]:
    # HAMi tries the highest start first for 1g./3g. profiles, the lowest first for the others.
    ordered = sorted(profile.placements, key=lambda p: p.start)
    if profile.name.startswith(("1g.", "3g.")):
        ordered.reverse()
    return ordered


def choose_instance(
    profiles: Sequence[MigProfile], taken: Sequence[MigReservation], memreq: int
) -> MigReservation | None:
    """The smallest profile with memory ≥ ``memreq`` (fewer slices on ties) that still has a
    placement overlapping none of ``taken``; None when the GPU cannot host the instance."""
    fitting = sorted(
        (p for p in profiles if p.memory_mb >= memreq), key=lambda p: (p.memory_mb, p.slice_count)
    )
    for profile in fitting:
        for placement in _placement_order(profile):
            if not any(placement.overlaps(t.placement) for t in taken):
                return MigReservation(profile=profile.name, placement=placement)
    return None


def profile_named(profiles: Sequence[MigProfile], name: str) -> MigProfile | None:
    return next((p for p in profiles if p.name == name), None)
