# The device plugin's build pieces (included by the top Makefile):
#   proto         generate the kubelet device-plugin v1beta1 stubs (src/hami/agent/kubelet/proto)
#   kubelet-peer  build the kubelet-side peer from upstream k8s.io/kubelet (cached by key)
.PHONY: proto kubelet-peer

PROTO_SRC := src/hami/agent/kubelet/proto/api.proto $(wildcard src/hami/agent/dra/proto/*.proto)
PROTO_OUT := src/hami/agent/kubelet/proto/api_pb2.py

proto: $(PROTO_OUT)

$(PROTO_OUT): $(PROTO_SRC) src/hami/agent/kubelet/protogen.py $(VENV)/.installed
	$(BIN)/python -m hami.agent.kubelet.protogen

## rebuilt only when hack/kubelet/peer's go.mod, go.sum or sources change (see build-peer.sh)
kubelet-peer:
	@hack/kubelet/build-peer.sh >/dev/null

SETUP_DEPS += proto
TEST_DEPS += kubelet-peer
