"""The one place where failures become replies (extender ``Error`` text, HTTP status)."""

from __future__ import annotations

from hami.api.errors import WireFormatError
from hami.k8s.api import KubeAPIError
from hami.scheduler.bind import BindError
from hami.scheduler.filter import FilterError
from hami.scheduler.service import NotReady

# Failures a handler reports in the reply body (kube-scheduler expects HTTP 200 with `Error`).
EXTENDER_ERRORS = (WireFormatError, FilterError, BindError, NotReady, KubeAPIError)


def extender_error(exc: Exception) -> str:
    """The ``Error`` text for a failed /filter or /bind."""
    if isinstance(exc, WireFormatError):
        return f"bad request: {exc}"
    return str(exc) or type(exc).__name__


def error_reason(exc: Exception) -> str:
    """The error class of a failed /filter, the reason of its ``error`` decision."""
    if isinstance(exc, FilterError):
        return exc.reason
    if isinstance(exc, WireFormatError):
        return "BadRequest"
    if isinstance(exc, NotReady):
        return "NotReady"
    if isinstance(exc, KubeAPIError):
        return "KubeAPIError"
    return type(exc).__name__


def webhook_status(exc: Exception) -> int:
    """HTTP status for an AdmissionReview that cannot be read."""
    return 400 if isinstance(exc, WireFormatError | ValueError) else 500
