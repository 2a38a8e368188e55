"""List-then-watch loops that keep the cache current (one per resource kind), over the one
loop in `hami.k8s.watch`: a list replaces the cache's picture, each change is applied, a 410
lists again and any other failure reconnects with capped exponential backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hami.k8s.api import Kind, KubeAPI, Manifest, ObjectList
from hami.k8s.watch import Backoff, list_then_watch


@dataclass(frozen=True, slots=True)
class Sink:
    """Where one kind's objects go: a full list, or one event at a time."""

    replace: Callable[[Iterable[Manifest]], None]
    apply: Callable[[str, Manifest], None]


class Informer:
    def __init__(
        self,
        kube: KubeAPI,
        kind: Kind,
        sink: Sink,
        *,
        label_selector: str | None = None,
        watch_timeout: int = 300,
        backoff: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        self._kube = kube
        self._kind = kind
        self._sink = sink
        self._selector = label_selector
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self.relists = 0

    async def run(self) -> None:
        """Forever: list, then watch from where the list (or the last event) left off."""
        stream = list_then_watch(
            self._kube,
            self._kind,
            label_selector=self._selector,
            timeout_seconds=self._watch_timeout,
            backoff=Backoff(*self._backoff),
        )
        async for item in stream:
            if isinstance(item, ObjectList):
                self.relists += 1
                self._sink.replace(item.items)
            else:
                self._sink.apply(item.type, item.object)
