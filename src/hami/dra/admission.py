"""The webhook's DRA path: translate the pod (:mod:`hami.dra.translate`), make sure the shared
ResourceClaimTemplates it refers to exist, answer with the patch.

Creating a template is the webhook's only side effect, and an idempotent one: a template is
named by the digest of its shape, so "already exists" means "the same template exists". Names
seen once are remembered, so a burst of like pods costs one API call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hami.api import keys
from hami.api.admission import AdmissionResponse
from hami.dra.translate import DraMode, TranslateError, translate
from hami.k8s.api import Conflict, Kind, KubeAPI, KubeAPIError

log = logging.getLogger(__name__)

CLAIM_TEMPLATES = Kind(
    "resourceclaimtemplates", "apis/resource.k8s.io/v1", True, "ResourceClaimTemplate"
)


class DraAdmission:
    def __init__(self, kube: KubeAPI, mode: DraMode) -> None:
        self._kube = kube
        self.mode = mode
        self._known: set[tuple[str, str]] = set()

    def applies(self, pod: Mapping[str, Any]) -> bool:
        return self.mode.applies(pod)

    async def review(
        self, uid: str, pod: Mapping[str, Any], dry_run: bool = False
    ) -> AdmissionResponse:
        """A dry run creates no template (the webhook declares ``NoneOnDryRun``)."""
        meta = pod.get("metadata") or {}
        forged = sorted(
            k for k in (meta.get("annotations") or {}) if keys.is_allocation_annotation(k)
        )
        if forged:
            return AdmissionResponse(
                uid=uid,
                allowed=False,
                code=403,
                message=f"annotation(s) {', '.join(forged)} are written only by hami; "
                "remove them from the pod (docs/security.md)",
            )
        try:
            done = translate(pod, self.mode)
        except TranslateError as exc:
            return AdmissionResponse(uid=uid, allowed=False, code=400, message=f"DRA mode: {exc}")
        for template in done.templates:
            tmeta = template["metadata"]
            key = (tmeta["namespace"], tmeta["name"])
            if key in self._known or dry_run:
                continue
            try:
                await self._kube.create(CLAIM_TEMPLATES, dict(template), tmeta["namespace"])
            except Conflict:
                pass  # the same shape's template, made by an earlier pod
            except KubeAPIError as exc:
                log.warning("ResourceClaimTemplate %s/%s: %s", *key, exc)
                return AdmissionResponse(
                    uid=uid,
                    allowed=False,
                    code=500,
                    message=f"DRA mode: cannot create ResourceClaimTemplate {key[1]}: {exc}",
                )
            self._known.add(key)
        return AdmissionResponse(uid=uid, allowed=True, patch=done.patch)
