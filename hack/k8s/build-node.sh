#!/usr/bin/env bash
# Build the node-side Kubernetes binaries for the real-node tests (docs/real-node.md) from the
# wrapper Go module hack/k8s/node — the same k8s.io/kubernetes release and staging-module map as
# the control plane — into a cache directory outside the checkout:
#
#   $HAMI_CACHE/node-<key>/{kubelet,kube-controller-manager,kubectl,manifest.json}
#
# <key> hashes the Go version, the wrapper's go.mod/go.sum, the ldflags and the recipe
# revision; $HAMI_CACHE/node-current.json points at the last good build (hami.node reads it).
# A cold build takes about 6-8 minutes on 2 cores when the control plane's Go build cache is
# warm. Any failure exits non-zero with the reason; it never skips silently.
set -euo pipefail

readonly RECIPE_REV=1
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HAMI_CACHE="${HAMI_CACHE:-$HOME/.cache/hami}"
readonly BINARIES=(kubelet kube-controller-manager kubectl)
readonly REQUIRED=(manifest.json)
readonly PACKAGES=(k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kubectl)
readonly START=$SECONDS

readonly LABEL=node-bin
# shellcheck source=hack/k8s/lib.sh
source "$HERE/lib.sh"

cache_key() {
  {
    echo "recipe $RECIPE_REV"
    "$GO" version
    echo "ldflags $LDFLAGS_KUBE"
    cat "$HERE"/node/go.{mod,sum}
  } | sha256sum | cut -c1-16
}

announce() {
  say "Kubernetes $K8S_VERSION: ${BINARIES[*]}, $("$GO" version)"
  say "NOTE: a first build takes several minutes on 2 cores; later runs reuse the cache."
}

produce() { # produce <out dir>
  run_go "download modules for the node binaries" node "$WORK/download.log" \
    list -deps -f '' "${PACKAGES[@]}"
  run_go "build ${BINARIES[*]} $K8S_VERSION" node "$WORK/build.log" \
    build -v -trimpath -ldflags "$LDFLAGS_KUBE" -o "$1/" "${PACKAGES[@]}"
  smoke_test "$1" kubelet kube-controller-manager
  "$1/kubectl" version --client >/dev/null || die "kubectl version --client failed"
  cat >"$1/manifest.json" <<JSON
{
  "key": "$KEY",
  "go": "$("$GO" env GOVERSION)",
  "kubernetes": "$K8S_VERSION",
  "build_seconds": $((SECONDS - START)),
  "binaries": ["kubelet", "kube-controller-manager", "kubectl"]
}
JSON
}

main() {
  go_env
  K8S_VERSION="$(module_version node k8s.io/kubernetes)"
  LDFLAGS_KUBE="$(ldflags_kube "$K8S_VERSION")"
  KEY="$(cache_key)"
  cached_build node "node binaries"
}

main "$@"
