"""An in-memory `KubeAPI` for tests: resourceVersions, merge patches with preconditions,
watches with history (and 410 when it is gone), bindings, and injected failures."""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hami.k8s import objects
from hami.k8s.api import (
    NODES,
    PODS,
    Conflict,
    Gone,
    Kind,
    KubeAPIError,
    Manifest,
    NotFound,
    ObjectList,
    WatchEvent,
)

_CLOSE = object()
_Key = tuple[str, str, str]  # plural, namespace, name


@dataclass(slots=True)
class _Fault:
    op: str
    error: Exception
    plural: str | None
    times: int


@dataclass(slots=True)
class _Watcher:
    plural: str
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch (returns a new value)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, object] = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(str(k), None)
        else:
            result[str(k)] = merge_patch(result.get(str(k)), v)
    return result


def _field(obj: Manifest, key: str) -> str | None:
    if key == "metadata.name":
        return objects.name(obj)
    if key == "spec.nodeName":
        return str(objects.spec(obj).get("nodeName") or "")
    return None


def _selects(obj: Manifest, label_selector: str | None, field_selector: str | None) -> bool:
    if label_selector:
        labels = objects.labels(obj)
        for term in label_selector.split(","):
            k, _, v = term.partition("=")
            if labels.get(k.strip()) != v.strip():
                return False
    for term in field_selector.split(",") if field_selector else ():
        negate = "!=" in term
        k, _, v = term.replace("!=", "=").partition("=")
        value = _field(obj, k.strip())
        if value is not None and (value == v.strip()) == negate:
            return False
    return True


class FakeKube:
    """Implements `KubeAPI` in memory. ``calls`` records every call as (verb, plural, key)."""

    def __init__(self, history: int = 10_000) -> None:
        self._objects: dict[_Key, dict[str, object]] = {}
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._history: list[tuple[int, str, WatchEvent]] = []
        self._max_history = history
        self._watchers: list[_Watcher] = []
        self._faults: list[_Fault] = []
        self.calls: list[tuple[str, str, str]] = []
        self.delays: dict[str, float] = {}

    # --- test helpers ------------------------------------------------------------------------

    def fail_next(
        self, op: str, error: Exception, kind: Kind | None = None, times: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``op`` (e.g. ``merge_patch``) raise ``error``: a
        `KubeAPIError` as the real client raises, or any other to test what callers do then."""
        self._faults.append(_Fault(op, error, kind.plural if kind else None, times))

    def forget_history(self) -> None:
        """Drop the watch history: watches resuming from an old resourceVersion get 410."""
        self._history.clear()

    async def close_watches(self) -> None:
        """End every open watch stream, as an API server does at its timeout."""
        self.break_watches()

    def break_watches(self, error: KubeAPIError | None = None) -> None:
        """Open watches raise ``error`` (None: end cleanly, as at the server's timeout) once
        they have delivered what happened before this call."""
        for watcher in self._watchers:
            watcher.queue.put_nowait(_CLOSE if error is None else error)

    def history(self, kind: Kind) -> list[WatchEvent]:
        """The changes of ``kind`` a watch from version 0 would replay, oldest first."""
        return [e for _, p, e in self._history if p == kind.plural]

    def heal(self) -> None:
        """Drop every fault `fail_next` injected that has not fired yet."""
        self._faults.clear()

    def put(self, kind: Kind, obj: Mapping[str, object]) -> Manifest:
        """Store ``obj`` at once (ADDED, or MODIFIED when it exists), as another client would;
        a namespaced object without a namespace goes to ``default``."""
        body = copy.deepcopy(dict(obj))
        meta = dict(objects.meta(body))
        if kind.namespaced:
            meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))
        body["metadata"] = meta
        exists = self._key(kind, str(meta["name"]), objects.namespace(body)) in self._objects
        return self._store(kind, body, "MODIFIED" if exists else "ADDED")

    def remove(self, kind: Kind, name: str, namespace: str | None = None) -> None:
        """Delete at once (DELETED to the watches), as another client would."""
        obj = dict(self._objects.pop(self._key(kind, name, namespace)))
        obj["metadata"] = {**objects.meta(obj), "resourceVersion": str(self._next_rv())}
        self._emit(kind, "DELETED", obj)

    def writes(self, verb: str | None = None, plural: str | None = None) -> int:
        return sum(
            1
            for v, p, _ in self.calls
            if v in ("merge_patch", "create", "replace", "bind", "delete")
            and (verb is None or v == verb)
            and (plural is None or p == plural)
        )

    def stored(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, object]:
        return self._objects[self._key(kind, name, namespace)]

    def all(self, kind: Kind) -> list[dict[str, object]]:
        return [o for (p, _, _), o in self._objects.items() if p == kind.plural]

    async def delete(
        self,
        kind: Kind,
        name: str,
        namespace: str | None = None,
        *,
        grace_seconds: int | None = None,
    ) -> None:
        await self._enter("delete", kind, name, namespace)
        key = self._key(kind, name, namespace)
        obj = self._objects.pop(key, None)
        if obj is None:
            raise NotFound(f"{kind.plural} {name} not found")
        obj = copy.deepcopy(obj)
        obj["metadata"] = {**objects.meta(obj), "resourceVersion": str(self._next_rv())}
        self._emit(kind, "DELETED", obj)

    # --- KubeAPI -----------------------------------------------------------------------------

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Manifest:
        await self._enter("get", kind, name, namespace)
        return copy.deepcopy(self._require(kind, name, namespace))

    async def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        await self._enter("list", kind, "", namespace)
        items = tuple(
            copy.deepcopy(o)
            for (p, ns, _), o in sorted(self._objects.items())
            if p == kind.plural
            and (not namespace or ns == namespace)
            and _selects(o, label_selector, field_selector)
        )
        return ObjectList(items=items, resource_version=str(self._last_rv))

    async def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        await self._enter("watch", kind, "", namespace)
        since = objects.rv_number(resource_version)
        oldest = self._history[0][0] if self._history else self._last_rv + 1
        if since < oldest - 1 and since != self._last_rv:
            raise Gone(f"too old resource version: {since} ({oldest - 1})")
        watcher = _Watcher(kind.plural)
        backlog = [e for rv, p, e in self._history if rv > since and p == kind.plural]
        self._watchers.append(watcher)
        try:
            last = since
            for event in backlog:
                last = objects.rv_number(objects.resource_version(event.object))
                if _selects(event.object, label_selector, field_selector):
                    yield event
            while True:
                item = await watcher.queue.get()
                if item is _CLOSE:
                    return
                if isinstance(item, KubeAPIError):
                    raise item
                assert isinstance(item, WatchEvent)
                rv = objects.rv_number(objects.resource_version(item.object))
                wanted = not namespace or objects.namespace(item.object) == namespace
                if rv > last and wanted and _selects(item.object, label_selector, field_selector):
                    yield item
        finally:
            self._watchers.remove(watcher)

    async def merge_patch(
        self, kind: Kind, name: str, patch: Manifest, namespace: str | None = None
    ) -> Manifest:
        await self._enter("merge_patch", kind, name, namespace)
        current = self._require(kind, name, namespace)
        wanted = objects.resource_version(patch)
        if wanted and wanted != objects.resource_version(current):
            raise Conflict(f"{kind.plural} {name}: the object has been modified")
        merged = merge_patch(current, patch)
        assert isinstance(merged, dict)
        return self._store(kind, merged, "MODIFIED")

    async def create(
        self, kind: Kind, body: Manifest, namespace: str | None = None, *, dry_run: bool = False
    ) -> Manifest:
        ns = namespace or objects.namespace(body) or ("default" if kind.namespaced else "")
        obj = copy.deepcopy(dict(body))
        meta = dict(objects.meta(obj))
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        await self._enter("create", kind, str(meta.get("name")), ns)
        if kind.namespaced:
            meta["namespace"] = ns
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        obj["metadata"] = meta
        if self._key(kind, str(meta["name"]), ns) in self._objects:
            raise Conflict(f"{kind.plural} {meta['name']} already exists")
        if dry_run:
            return obj
        return self._store(kind, obj, "ADDED")

    async def replace(
        self, kind: Kind, name: str, body: Manifest, namespace: str | None = None
    ) -> Manifest:
        await self._enter("replace", kind, name, namespace)
        current = self._require(kind, name, namespace)
        if objects.resource_version(body) != objects.resource_version(current):
            raise Conflict(f"{kind.plural} {name}: the object has been modified")
        obj = copy.deepcopy(dict(body))
        obj["metadata"] = {**objects.meta(obj), "uid": objects.uid(current)}
        return self._store(kind, obj, "MODIFIED")

    async def bind(
        self,
        namespace: str,
        name: str,
        node: str,
        uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        await self._enter("bind", PODS, name, namespace)
        pod = self._require(PODS, name, namespace)
        if uid and objects.uid(pod) != uid:
            raise Conflict(f"pod {namespace}/{name}: uid mismatch")
        if objects.spec(pod).get("nodeName"):
            raise Conflict(f"pod {namespace}/{name} is already assigned to a node")
        patch: dict[str, object] = {"spec": {"nodeName": node}}
        if annotations:
            patch["metadata"] = {"annotations": dict(annotations)}
        merged = merge_patch(pod, patch)
        assert isinstance(merged, dict)
        self._store(PODS, merged, "MODIFIED")

    async def close(self) -> None:
        await self.close_watches()

    # --- internals ---------------------------------------------------------------------------

    def _key(self, kind: Kind, name: str, namespace: str | None) -> _Key:
        ns = (namespace or "default") if kind.namespaced else ""
        return (kind.plural, ns, name)

    def _require(self, kind: Kind, name: str, namespace: str | None) -> dict[str, object]:
        obj = self._objects.get(self._key(kind, name, namespace))
        if obj is None:
            raise NotFound(f"{kind.plural} {name!r} not found")
        return obj

    def _next_rv(self) -> int:
        self._last_rv = next(self._rv)
        return self._last_rv

    def _store(self, kind: Kind, obj: dict[str, object], verb: str) -> Manifest:
        obj["metadata"] = {**objects.meta(obj), "resourceVersion": str(self._next_rv())}
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
        name = objects.name(obj)
        self._objects[self._key(kind, name, objects.namespace(obj))] = obj
        self._emit(kind, verb, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _emit(self, kind: Kind, verb: str, obj: Manifest) -> None:
        event = WatchEvent(verb, obj)
        self._history.append((self._last_rv, kind.plural, event))
        if len(self._history) > self._max_history:
            del self._history[0]
        for watcher in self._watchers:
            if watcher.plural == kind.plural:
                watcher.queue.put_nowait(event)

    async def _enter(self, op: str, kind: Kind, name: str, namespace: str | None) -> None:
        self.calls.append((op, kind.plural, f"{namespace}/{name}" if namespace else name))
        delay = self.delays.get(op)
        if delay:
            await asyncio.sleep(delay)
        for fault in self._faults:
            if fault.op == op and fault.plural in (None, kind.plural) and fault.times > 0:
                fault.times -= 1
                raise fault.error


def node_manifest(
    name: str,
    annotations: Mapping[str, str] | None = None,
    allocatable: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """A minimal Node object for tests."""
    resources = dict(allocatable or {})
    return {
        "apiVersion": "v1",
        "kind": NODES.kind,
        "metadata": {"name": name, "annotations": dict(annotations or {}), "labels": {}},
        "status": {"allocatable": resources, "capacity": resources},
    }
