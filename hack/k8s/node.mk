# The real node for the real-node tests and `hami demo up --real-node` (docs/real-node.md).
#   node-bin   kubelet, kube-controller-manager and kubectl from the wrapper Go module
#              hack/k8s/node, containerd 1.7 (CDI) with its runc shim and ctr from
#              hack/k8s/containerd, into $(HAMI_CACHE)/node-<key>/ (cached like cluster-bin)
#   node-deps  runc, the CNI plugins, busybox-static, iptables and mmdebstrap (the
#              hami image) from Debian, when root;
#              as another user it only says what is missing (the real-node tests need root)
NODE_DEBS := runc containernetworking-plugins busybox-static iptables mmdebstrap

.PHONY: node-bin node-deps
node-bin:
	@bash hack/k8s/build-node.sh

node-deps:
	@missing=""; \
	for p in $(NODE_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "node-deps: not root, so the real-node tests will not run; missing Debian packages:$$missing (as root: make node-deps)"; \
		exit 0; fi; \
	echo "node-deps: installing$$missing (Debian packages for the real node)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null

TEST_DEPS += node-bin node-deps
DEMO_DEPS += node-bin
