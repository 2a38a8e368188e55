#!/usr/bin/env bash
# Build the node-side binaries for the real-node tests (docs/real-node.md) into a cache
# directory outside the checkout: kubelet, kube-controller-manager and kubectl from the wrapper
# Go module hack/k8s/node (the same k8s.io/kubernetes release and staging-module map as the
# control plane), and containerd with its runc shim and ctr from hack/k8s/containerd (1.7, for
# CDI: Debian bookworm's 1.6 ignores the CDI devices a DRA claim is prepared as):
#
#   $HAMI_CACHE/node-<key>/{kubelet,kube-controller-manager,kubectl,containerd,
#                           containerd-shim-runc-v2,ctr,manifest.json}
#
# <key> hashes the Go version, both wrappers' go.mod/go.sum, the ldflags and the recipe
# revision; $HAMI_CACHE/node-current.json points at the last good build (hami.node reads it).
# A build with an empty Go build cache took 7 min 15 s on 2 cores (6 min for the Kubernetes
# binaries, 1 more for containerd); with the control plane's cache warm it is shorter. Any
# failure exits non-zero with the reason; it never skips silently.
set -euo pipefail

readonly RECIPE_REV=2
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HAMI_CACHE="${HAMI_CACHE:-$HOME/.cache/hami}"
readonly BINARIES=(kubelet kube-controller-manager kubectl containerd containerd-shim-runc-v2 ctr)
readonly REQUIRED=(manifest.json)
readonly PACKAGES=(k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kubectl)
readonly CONTAINERD_MODULE=github.com/containerd/containerd
readonly CONTAINERD_PACKAGES=("$CONTAINERD_MODULE/cmd/containerd"
  "$CONTAINERD_MODULE/cmd/containerd-shim-runc-v2" "$CONTAINERD_MODULE/cmd/ctr")
# storage drivers the node disables anyway (hami.node.render); without them no cgo is needed
readonly CONTAINERD_TAGS="no_btrfs no_devmapper no_zfs no_aufs urfave_cli_no_docs"
readonly START=$SECONDS

readonly LABEL=node-bin
# shellcheck source=hack/k8s/lib.sh
source "$HERE/lib.sh"

cache_key() {
  {
    echo "recipe $RECIPE_REV"
    "$GO" version
    echo "ldflags $LDFLAGS_KUBE $LDFLAGS_CONTAINERD tags $CONTAINERD_TAGS"
    cat "$HERE"/node/go.{mod,sum} "$HERE"/containerd/go.{mod,sum}
  } | sha256sum | cut -c1-16
}

announce() {
  say "Kubernetes $K8S_VERSION, containerd $CONTAINERD_VERSION: ${BINARIES[*]}, $("$GO" version)"
  say "NOTE: a first build takes several minutes on 2 cores; later runs reuse the cache."
}

produce() { # produce <out dir>
  run_go "download modules for the node binaries" node "$WORK/download.log" \
    list -deps -f '' "${PACKAGES[@]}"
  run_go "build kubelet kube-controller-manager kubectl $K8S_VERSION" node "$WORK/build.log" \
    build -v -trimpath -ldflags "$LDFLAGS_KUBE" -o "$1/" "${PACKAGES[@]}"
  run_go "download modules for containerd" containerd "$WORK/download-containerd.log" \
    list -deps -tags "$CONTAINERD_TAGS" -f '' "${CONTAINERD_PACKAGES[@]}"
  run_go "build containerd $CONTAINERD_VERSION" containerd "$WORK/build-containerd.log" \
    build -v -trimpath -tags "$CONTAINERD_TAGS" -ldflags "$LDFLAGS_CONTAINERD" -o "$1/" \
    "${CONTAINERD_PACKAGES[@]}"
  smoke_test "$1" kubelet kube-controller-manager containerd ctr
  "$1/containerd-shim-runc-v2" -v >/dev/null || die "containerd-shim-runc-v2 -v failed"
  "$1/kubectl" version --client >/dev/null || die "kubectl version --client failed"
  cat >"$1/manifest.json" <<JSON
{
  "key": "$KEY",
  "go": "$("$GO" env GOVERSION)",
  "kubernetes": "$K8S_VERSION",
  "containerd": "$CONTAINERD_VERSION",
  "build_seconds": $((SECONDS - START)),
  "binaries": ["kubelet", "kube-controller-manager", "kubectl", "containerd",
    "containerd-shim-runc-v2", "ctr"]
}
JSON
}

main() {
  go_env
  K8S_VERSION="$(module_version node k8s.io/kubernetes)"
  LDFLAGS_KUBE="$(ldflags_kube "$K8S_VERSION")"
  CONTAINERD_VERSION="$(module_version containerd "$CONTAINERD_MODULE")"
  LDFLAGS_CONTAINERD="-s -w -X $CONTAINERD_MODULE/version.Version=$CONTAINERD_VERSION"
  KEY="$(cache_key)"
  cached_build node "node binaries (kubelet, containerd)"
}

main "$@"
