"""The webhook's DRA path: translate the pod (:mod:`hami.core.dra.translate`), make sure the shared
ResourceClaimTemplates it refers to exist, answer with the patch.

Creating a template is the webhook's only side effect, and an idempotent one: a template is
named by the digest of its shape, so "already exists" means "the same template exists". Names
seen once are remembered, so a burst of like pods costs one API call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from hami.api import keys
from hami.api.admission import AdmissionResponse
from hami.core.dra.translate import DraMode, TranslateError, translate
from hami.k8s.api import Conflict, Kind, KubeAPI, KubeAPIError

KNOWN_SECONDS = 60.0

log = logging.getLogger(__name__)

CLAIM_TEMPLATES = Kind(
    "resourceclaimtemplates", "apis/resource.k8s.io/v1", True, "ResourceClaimTemplate"
)


class DraAdmission:
    def __init__(self, kube: KubeAPI, mode: DraMode) -> None:
        self._kube = kube
        self.mode = mode
        self._known: dict[tuple[str, str], float] = {}  # template → when it was last seen
        self._inflight: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._clock = time.monotonic

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
        if not dry_run:
            for template in done.templates:
                problem = await self._ensure(template)
                if problem:
                    return AdmissionResponse(uid=uid, allowed=False, code=500, message=problem)
        return AdmissionResponse(uid=uid, allowed=True, patch=done.patch)

    async def _ensure(self, template: Mapping[str, Any]) -> str:
        """Create the template unless it is known to exist; "" or why it could not be made.
        Concurrent pods of one shape share one create; a template is trusted to exist for
        :data:`KNOWN_SECONDS` (one deleted by hand is made again after that)."""
        meta = template["metadata"]
        key = (meta["namespace"], meta["name"])
        seen = self._known.get(key)
        if seen is not None and self._clock() - seen < KNOWN_SECONDS:
            return ""
        running = self._inflight.get(key)
        if running is None:
            running = asyncio.ensure_future(self._create(key, template))
            self._inflight[key] = running
            running.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(running)

    async def _create(self, key: tuple[str, str], template: Mapping[str, Any]) -> str:
        try:
            await self._kube.create(CLAIM_TEMPLATES, dict(template), key[0])
        except Conflict:
            pass  # the same shape's template, made for an earlier pod
        except KubeAPIError as exc:
            log.warning("ResourceClaimTemplate %s/%s: %s", *key, exc)
            return f"DRA mode: cannot create ResourceClaimTemplate {key[1]}: {exc}"
        self._known[key] = self._clock()
        return ""
