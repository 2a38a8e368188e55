"""The node agent: HAMi's NVIDIA device plugin (kubelet device-plugin API v1beta1).

Layout: `wire` (generated stubs), `settings` (configuration), `discovery` / `fake` / `nvml`
(device discovery port and backends), `health`, `devices` and `allocate` (pure logic),
`allocator` (the Allocate flow), `servicer` (gRPC handlers), `errors` (the one
exception-to-gRPC mapping), `kubelet` (registration), `annotator` (node registration loop),
`plugin` (one node), `simulate` (many kwok nodes), `cdi`, `cli`. Kubernetes: `hami.k8s.port`
(the port every service shares).
"""
