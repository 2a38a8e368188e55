# The local Kubernetes control plane for the e2e tests and the demo (docs/cluster.md).
# `make cluster-bin` builds etcd, kube-apiserver, kube-scheduler and kwok from the wrapper Go
# modules in hack/k8s/ into $(HAMI_CACHE)/k8s-<key>/; when that cache matches it returns at
# once. A first build takes many minutes; a missing Go toolchain or an unreachable Go module
# proxy fails the build (and so `make test`) with the reason.

.PHONY: cluster-bin
cluster-bin:
	@bash hack/k8s/build.sh

TEST_DEPS += cluster-bin
