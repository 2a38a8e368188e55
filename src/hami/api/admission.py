"""AdmissionReview (admission.k8s.io v1 and v1beta1) and JSON Patch operations.

The API server sends the version it negotiated from ``admissionReviewVersions``; the reply must
carry the same ``apiVersion``. v1 and v1beta1 share one shape for what a mutating webhook reads
and writes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from hami.api.errors import WireFormatError

Manifest = Mapping[str, object]

ADMISSION_V1 = "admission.k8s.io/v1"
ADMISSION_V1BETA1 = "admission.k8s.io/v1beta1"
VERSIONS = (ADMISSION_V1, ADMISSION_V1BETA1)

PatchVerb = Literal["add", "remove", "replace"]


def pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901) from path segments, escaping ``~`` and ``/``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True, slots=True)
class PatchOp:
    """One RFC 6902 operation."""

    op: PatchVerb
    path: str
    value: object = None

    def to_json(self) -> dict[str, object]:
        if self.op == "remove":
            return {"op": self.op, "path": self.path}
        return {"op": self.op, "path": self.path, "value": self.value}


def encode_patch(ops: Sequence[PatchOp]) -> str:
    """The base64 of the JSON array of operations, as ``response.patch`` carries it."""
    raw = json.dumps([op.to_json() for op in ops], separators=(",", ":")).encode()
    return base64.b64encode(raw).decode("ascii")


def decode_patch(value: str) -> list[dict[str, object]]:
    """Inverse of :func:`encode_patch` (for tests and clients)."""
    try:
        raw = json.loads(base64.b64decode(value))
    except ValueError as exc:
        raise WireFormatError("response.patch", value[:40], f"not base64 JSON ({exc})") from None
    if not isinstance(raw, list):
        raise WireFormatError("response.patch", value[:40], "expected a JSON array")
    return [cast(dict[str, object], op) for op in cast(list[object], raw)]


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """What a mutating webhook needs from ``AdmissionReview.request``."""

    api_version: str
    uid: str
    namespace: str
    operation: str
    obj: Manifest
    dry_run: bool = False

    @classmethod
    def from_json(cls, body: object) -> AdmissionRequest:
        what = "AdmissionReview"
        if not isinstance(body, Mapping):
            raise WireFormatError(what, type(body).__name__, "expected a JSON object")
        review = cast(Mapping[str, object], body)
        version = review.get("apiVersion") or ADMISSION_V1
        if version not in VERSIONS:
            raise WireFormatError(what, str(version), f"apiVersion must be one of {VERSIONS}")
        request = review.get("request")
        if not isinstance(request, Mapping):
            raise WireFormatError(what, "request", "missing request")
        req = cast(Mapping[str, object], request)
        uid = req.get("uid")
        if not isinstance(uid, str) or not uid:
            raise WireFormatError(what, "request.uid", "missing uid")
        obj = req.get("object")
        if not isinstance(obj, Mapping):
            raise WireFormatError(what, "request.object", "missing object")
        return cls(
            api_version=str(version),
            uid=uid,
            namespace=str(req.get("namespace") or ""),
            operation=str(req.get("operation") or ""),
            obj=cast(Manifest, obj),
            dry_run=bool(req.get("dryRun")),
        )


@dataclass(frozen=True, slots=True)
class AdmissionResponse:
    """``AdmissionReview.response``: allowed (optionally with a patch) or denied with a status."""

    uid: str
    allowed: bool
    patch: tuple[PatchOp, ...] = ()
    code: int = 200
    message: str = ""

    def review(self, api_version: str = ADMISSION_V1) -> dict[str, object]:
        """The whole AdmissionReview reply, in the request's apiVersion."""
        response: dict[str, object] = {"uid": self.uid, "allowed": self.allowed}
        if self.message or not self.allowed:
            response["status"] = {
                "code": self.code,
                "message": self.message,
                **({} if self.allowed else {"reason": _reason(self.code)}),
            }
        if self.allowed and self.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = encode_patch(self.patch)
        return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def _reason(code: int) -> str:
    return {400: "BadRequest", 403: "Forbidden", 500: "InternalError"}.get(code, "Invalid")
