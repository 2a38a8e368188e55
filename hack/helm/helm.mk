# helm, for the chart tests (tests/chart, tests/e2e/test_chart*.py; docs/install.md).
# `make helm-bin` builds the helm CLI from the wrapper Go module in hack/helm/module (pinned
# helm.sh/helm/v3, committed go.sum) into $(HAMI_CACHE)/helm-<key>/; when that cache matches
# it returns at once. A missing Go toolchain or an unreachable Go module proxy fails the build
# (and so `make test`) with the reason.

.PHONY: helm-bin
helm-bin:
	@bash hack/helm/build.sh

TEST_DEPS += helm-bin
