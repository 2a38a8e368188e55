"""The pods /filter and /bind may decide for, as the API server has them (by UID).

kube-scheduler sends the whole pod in ``ExtenderArgs``, but a body is only a claim: the
extender decides for the pod *the API server* holds under that UID — not yet bound, not
finished, and naming our ``schedulerName`` — so a caller cannot make it decide for a pod that
does not exist, another scheduler's pod, or a pod with a spec of its choosing. The pod
informer keeps the unbound pods of our scheduler here; a pod the watch has not delivered yet
is read from the API (`PodSource.pod`).
"""

from __future__ import annotations

from collections.abc import Iterable

from hami.k8s import objects
from hami.k8s.api import PODS, KubeAPI, KubeAPIError, Manifest, NotFound

TERMINAL = frozenset({"Succeeded", "Failed"})


class PodRefused(Exception):
    """The pod is not one this scheduler may decide for or bind; the message says why."""

    def __init__(self, message: str, reason: str = "PodRefused") -> None:
        super().__init__(message)
        self.reason = reason


class PendingPods:
    """Unbound, unfinished pods naming ``scheduler_name``, by UID (fed by the pod informer)."""

    def __init__(self, scheduler_name: str) -> None:
        self.scheduler_name = scheduler_name
        self._pods: dict[str, Manifest] = {}

    def __len__(self) -> int:
        return len(self._pods)

    def get(self, uid: str) -> Manifest | None:
        return self._pods.get(uid)

    def replace(self, items: Iterable[Manifest]) -> None:
        self._pods = {}
        for item in items:
            self.apply("ADDED", item)

    def apply(self, event: str, pod: Manifest) -> None:
        uid = objects.uid(pod)
        if event != "DELETED" and self._wanted(pod):
            self._pods[uid] = pod
        else:
            self._pods.pop(uid, None)

    def _wanted(self, pod: Manifest) -> bool:
        spec = objects.spec(pod)
        return (
            spec.get("schedulerName") == self.scheduler_name
            and not spec.get("nodeName")
            and objects.status(pod).get("phase") not in TERMINAL
        )


class PodSource:
    """The pod behind an extender request, checked (raises `PodRefused`)."""

    def __init__(self, kube: KubeAPI, pending: PendingPods) -> None:
        self._kube = kube
        self._pending = pending

    @property
    def scheduler_name(self) -> str:
        return self._pending.scheduler_name

    async def pod(self, namespace: str, name: str, uid: str) -> Manifest:
        """The unbound pod ``namespace/name`` (with ``uid`` when given) of our scheduler."""
        pod = self._pending.get(uid) if uid else None
        if pod is None:
            try:
                pod = await self._kube.get(PODS, name, namespace)
            except NotFound:
                raise PodRefused(f"pod {namespace}/{name} not found", "PodNotFound") from None
            except KubeAPIError as exc:
                raise PodRefused(f"get pod {namespace}/{name}: {exc}", "KubeAPIError") from exc
        found = objects.uid(pod)
        if uid and found != uid:
            raise PodRefused(
                f"pod {namespace}/{name} has UID {found}, not {uid} (deleted and created again?)",
                "PodNotFound",
            )
        if (objects.namespace(pod) or "default", objects.name(pod)) != (namespace, name):
            raise PodRefused(f"pod UID {uid} is not {namespace}/{name}", "PodNotFound")
        spec = objects.spec(pod)
        scheduler = spec.get("schedulerName") or "default-scheduler"
        if scheduler != self.scheduler_name:
            raise PodRefused(
                f"pod {namespace}/{name} is scheduled by {scheduler!r}, not {self.scheduler_name!r}",
                "ForeignScheduler",
            )
        if spec.get("nodeName"):
            raise PodRefused(
                f"pod {namespace}/{name} is already bound to {spec['nodeName']}", "PodBound"
            )
        if objects.status(pod).get("phase") in TERMINAL:
            raise PodRefused(f"pod {namespace}/{name} has finished", "PodFinished")
        return pod
