"""The kubelet DRA plugin API v1 and plugin registration v1: the .proto files and the stubs `make proto` generates from them."""
