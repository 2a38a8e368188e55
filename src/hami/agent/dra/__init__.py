"""DRA mode: hami as a Dynamic Resource Allocation driver (docs/dra.md) — the node half.

Pure modules (no I/O): :mod:`slices` (the node's ResourceSlice and the DeviceClass),
:mod:`prepare` (a claim -> CDI spec with libvgpu's env and mounts). Adapters: :mod:`kube`
(ResourceSlices and ResourceClaims through lightkube), :mod:`plugin` (kubelet registration +
``v1.DRAPlugin`` over gRPC), :mod:`simulate` (slices for kwok nodes), :mod:`cli`.

The pieces the scheduler's webhook, ``hami explain`` and the web UI share with it (names, the
pod -> ResourceClaimTemplate translation, claim records) are in :mod:`hami.core.dra`; the
webhook's DRA path is :mod:`hami.scheduler.dra_admission`.
"""
