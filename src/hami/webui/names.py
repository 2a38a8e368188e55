"""What the UI calls each vendor and its devices, from each vendor's spec row.

A device carries its vendor *key* (``NVIDIA``, ``Ascend910B``, ``GCU``, ``Enflame``, ``XPU``…).
Operators think in vendor names (Huawei, Enflame, Kunlunxin) and device words (NPU, GCU, XPU), so
every key the registry builds is mapped here through its vendor's spec (`Spec.name`, `word`,
`aliases`) — never by matching substrings of device types. Several keys share one name (Ascend
910B and 310P are both Huawei; Enflame GCU and DRS are both Enflame), so a filter by name
selects all of them and a table by vendor shows each name once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hami.core.model import Device, DeviceUsage
from hami.core.vendor import Held, Vendor


@dataclass(frozen=True, slots=True)
class VendorName:
    """A vendor as operators name it: ``name`` (shown), ``aliases`` (also accepted by the
    filter) and the word for one of its devices."""

    name: str
    word: str
    aliases: tuple[str, ...] = ()

    def matches(self, text: str) -> bool:
        wanted = text.strip().lower()
        return wanted in (self.name.lower(), *(a.lower() for a in self.aliases))


class VendorNames:
    """Vendor key → `VendorName`, for the vendors the registry built (and any key a device
    carries that no enabled vendor has: shown under the key itself)."""

    def __init__(self, vendors: Mapping[str, Vendor]) -> None:
        self._by_key = {key: self._of(key, vendor) for key, vendor in vendors.items()}
        self._vendors = vendors

    @staticmethod
    def _of(key: str, vendor: Vendor) -> VendorName:
        """The vendor's own spec row names it (`Spec.name`, `word`, `aliases`)."""
        spec = getattr(vendor, "spec", None)
        if spec is None or not spec.name:
            return VendorName(key, "device")
        return VendorName(spec.name, spec.word, (*spec.aliases, key))

    def held(self, device: Device, usage: DeviceUsage) -> Held:
        """What ``usage`` holds of ``device`` in its vendor's unit (`Vendor.held`)."""
        vendor = self._vendors.get(device.vendor)
        if vendor is None:
            return Held(usage.usedmem, usage.usedcores, device.cores)
        return vendor.held(device, usage)

    def get(self, key: str) -> VendorName:
        return self._by_key.get(key) or VendorName(key, "device")

    def name(self, key: str) -> str:
        return self.get(key).name

    def word(self, key: str) -> str:
        return self.get(key).word

    def keys_named(self, text: str) -> frozenset[str]:
        """Every vendor key the name (or alias, or key) ``text`` stands for."""
        return frozenset(k for k, n in self._by_key.items() if n.matches(text))

    def names(self, keys: Iterable[str] | None = None) -> list[str]:
        """Each vendor name once (of ``keys``, default every enabled vendor), sorted."""
        chosen = self._by_key if keys is None else keys
        return sorted({self.name(k) for k in chosen})
