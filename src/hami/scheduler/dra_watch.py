"""The cluster's ResourceClaims and ResourceSlices, kept current by two informers, for the
scheduler's metrics (DRA allocations next to extender ones: docs/dra.md, docs/monitoring.md).
Run only with DRA mode on (``--dra-namespaces``), so a cluster without ``resource.k8s.io/v1``
is never asked."""

from __future__ import annotations

from collections.abc import Iterable

from hami.draview import CLAIMS, SLICES
from hami.k8s import objects
from hami.k8s.api import KubeAPI, Manifest
from hami.scheduler.informer import Informer, Sink


class _Store:
    def __init__(self, owner: DraWatch) -> None:
        self._owner = owner
        self.objects: dict[tuple[str, str], Manifest] = {}

    def replace(self, items: Iterable[Manifest]) -> None:
        self.objects = {(objects.namespace(m), objects.name(m)): m for m in items}
        self._owner.version += 1

    def apply(self, event: str, manifest: Manifest) -> None:
        key = (objects.namespace(manifest), objects.name(manifest))
        if event == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = manifest
        self._owner.version += 1


class DraWatch:
    """``claims()``/``slices()`` as the watches last saw them; ``version`` counts changes."""

    def __init__(self) -> None:
        self.version = 0
        self._claims = _Store(self)
        self._slices = _Store(self)

    def informers(self, kube: KubeAPI) -> tuple[Informer, Informer]:
        """The two list-then-watch loops that fill it."""
        return (
            Informer(kube, CLAIMS, Sink(self._claims.replace, self._claims.apply)),
            Informer(kube, SLICES, Sink(self._slices.replace, self._slices.apply)),
        )

    def claims(self) -> list[Manifest]:
        return list(self._claims.objects.values())

    def slices(self) -> list[Manifest]:
        return list(self._slices.objects.values())
