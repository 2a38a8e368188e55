"""The device plugin's configuration: `settings` (one frozen `Settings` per node) and `loading`
(the shared device-config.yaml, the per-node JSON and the flags, merged)."""
