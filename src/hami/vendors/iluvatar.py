"""Iluvatar: one vendor per configured chip, slices on the legacy comma registration (§4.6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hami.api import keys
from hami.api.annotations import allocated_key, to_allocate_key
from hami.core.vendor import Admission
from hami.vendors import common, resources
from hami.vendors.config import IluvatarChip
from hami.vendors.family import SlicedVendor, Spec, rules


def chip_spec(word: str) -> Spec:
    """The spec of the chip whose common word is ``word`` (e.g. `BI-V100`)."""
    return Spec(
        key=word,
        register=f"hami.io/node-{word}-register",
        name="Iluvatar",
        word="GPU",
        aliases=("Iluvatar CoreX",),
        handshake=f"hami.io/node-handshake-{word}",
        to_allocate=to_allocate_key(word),
        allocated=allocated_key(word),
        memory_unit=keys.ILUVATAR_MEMORY_UNIT,
        core_default=0,
        core_max=None,
        rules=rules(
            label=word,
            use_uuid_key=f"hami.io/use-{word}-uuid",
            nouse_uuid_key=f"hami.io/no-use-{word}-uuid",
        ),
    )


@dataclass(frozen=True, slots=True)
class IluvatarVendor(SlicedVendor):
    """The `<chip>` vendor (e.g. `BI-V100`), configured by one entry of `iluvatars:`."""

    config: IluvatarChip
    spec: Spec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", chip_spec(self.config.common_word))

    @property
    def chip(self) -> IluvatarChip:
        return self.config

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """A multi-card request takes whole cards (vCore = count × 100); the container's name
        goes into `SOL_CONTINER_NAME`."""
        chip = self.config
        if chip.resource_count_name not in resources.limits(container):
            return Admission(uses_vendor=False, container=container)
        self.parse_container(container, where)
        out = common.mutable(container)
        count = resources.integer(out, chip.resource_count_name, where) or 0
        if count > 1:
            common.section_of(out, "limits")[chip.resource_core_name] = count * 100
        env = {keys.ILUVATAR_CONTAINER_ENV: str(container.get("name") or "")}
        return Admission(uses_vendor=True, container=out, env=env)
