"""`/webhook`: one AdmissionReview in, one out; the decision is `hami.core.mutate`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from hami.api.admission import AdmissionRequest, AdmissionResponse
from hami.core.mutate import MutateSettings, mutate
from hami.core.vendor import QuotaRoom, Vendor
from hami.k8s import objects
from hami.k8s.api import Manifest

if TYPE_CHECKING:
    from hami.scheduler.dra_admission import DraAdmission

log = logging.getLogger(__name__)


class Webhook:
    def __init__(
        self,
        vendors: Mapping[str, Vendor],
        settings: MutateSettings,
        quota: Callable[[str], Mapping[str, QuotaRoom]] | None = None,
        dra: DraAdmission | None = None,
    ) -> None:
        self._vendors = vendors
        self._settings = settings
        self._quota = quota
        self._dra = dra

    async def areview(self, request: AdmissionRequest) -> AdmissionResponse:
        """`review`, except that pods in DRA mode (docs/dra.md) get ResourceClaimTemplates."""
        if self._dra is not None:
            pod = _with_namespace(request)
            if self._dra.applies(pod):
                return await self._dra.review(request.uid, pod, dry_run=request.dry_run)
        return self.review(request)

    def review(self, request: AdmissionRequest) -> AdmissionResponse:
        pod = _with_namespace(request)
        room = self._quota(objects.namespace(pod) or "default") if self._quota else None
        verdict = mutate(pod, self._vendors, self._settings, room)
        if not verdict.allowed:
            log.info("denied pod in %s: %s", request.namespace, verdict.message)
        return AdmissionResponse(
            uid=request.uid,
            allowed=verdict.allowed,
            patch=verdict.patch,
            code=verdict.code,
            message="" if verdict.allowed else verdict.message,
        )


def _with_namespace(request: AdmissionRequest) -> Manifest:
    """The pod, with the request's namespace filled in (a CREATE often leaves it out)."""
    pod = request.obj
    meta = objects.meta(pod)
    if meta.get("namespace") or not request.namespace:
        return pod
    return {**pod, "metadata": {**meta, "namespace": request.namespace}}
