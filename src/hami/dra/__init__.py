"""DRA mode: hami as a Dynamic Resource Allocation driver (docs/dra.md).

Pure modules (no I/O): :mod:`names`, :mod:`slices`, :mod:`capacity`, :mod:`prepare`,
:mod:`translate`, :mod:`records`. Adapters: :mod:`kube` (ResourceSlices and ResourceClaims
through lightkube), :mod:`plugin` (kubelet registration + ``v1.DRAPlugin`` over gRPC),
:mod:`simulate` (slices for kwok nodes), :mod:`admission` (the webhook's DRA path).

The webhook imports only :mod:`translate` and :mod:`admission`, which stay clear of
``hami.agent`` (the scheduler and the agent are independent layers).
"""
