"""The kubelet adapter: the device-plugin gRPC service (`servicer`), its socket and registration
with kubelet (`session`), and the generated v1beta1 stubs (`wire`, `proto`, `protogen`)."""
