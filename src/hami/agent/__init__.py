"""The node agent: HAMi's NVIDIA device plugin (kubelet device-plugin API v1beta1) and, in DRA
mode, the DRA kubelet plugin (`dra`, `hami dra-plugin`) over the same discovery and settings.

Layout, by concern:

* `kubelet` — the device-plugin kubelet adapter: `servicer` (gRPC handlers), `session` (socket, registration,
  re-registration after a kubelet restart), `wire` / `proto` / `protogen` (generated stubs);
* `allocation` — `allocator` (the Allocate flow over the pod's annotations), `response` (pure:
  one container entry → env, mounts, devices, CDI names), `cdi` (the CDI spec);
* `discovery` — `port` (`DeviceSource`, `open_backend`), backends `nvml` and `fake`, `health`
  (the XID policy and the table ListAndWatch follows); `mig` — dynamic MIG;
* `dra` — the DRA kubelet plugin: registration + `v1.DRAPlugin`, the node's ResourceSlice,
  claims prepared as CDI specs (docs/dra.md);
* `config` — `settings` (one frozen `Settings` per node) and `loading` (files and flags merged);
* `simulation` — `--simulate`: `simulator` (kwok nodes from inventories) and `vendornodes`
  (any vendor's nodes from manifests);
* at the top: `values` (the frozen values passed around: GPUs, health events, allocation
  results), `devices` (pure device logic: replica IDs, the registration, preferred picks),
  `annotator` (the node registration loop and handshake), `errors` (the one
  exception-to-gRPC mapping), `plugin` (`NodeAgent`: one node, wired together), `cli`.

Kubernetes: `hami.k8s.port` (the port every service shares).
"""
