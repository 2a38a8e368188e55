"""`/webhook`: one AdmissionReview in, one out; the decision is `hami.core.mutate`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hami.api.admission import AdmissionRequest, AdmissionResponse
from hami.core.mutate import MutateSettings, mutate
from hami.core.vendor import Vendor
from hami.k8s import objects
from hami.k8s.api import Manifest

log = logging.getLogger(__name__)


class Webhook:
    def __init__(self, vendors: Mapping[str, Vendor], settings: MutateSettings) -> None:
        self._vendors = vendors
        self._settings = settings

    def review(self, request: AdmissionRequest) -> AdmissionResponse:
        verdict = mutate(_with_namespace(request), self._vendors, self._settings)
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
