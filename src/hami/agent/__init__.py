"""The node agent: HAMi's NVIDIA device plugin (kubelet device-plugin API v1beta1).

Layout: `wire` (generated stubs), `settings` (configuration), `discovery` / `fake` / `nvml`
(device discovery port and backends), `health`, `devices` and `allocate` (pure logic),
`kube` / `fake_kube` (Kubernetes port), `allocator` (the Allocate flow), `servicer` (gRPC
handlers), `errors` (the one exception-to-gRPC mapping), `kubelet` (registration), `annotator`
(node registration loop), `plugin` (one node), `simulate` (many kwok nodes), `cdi`, `cli`.
"""
