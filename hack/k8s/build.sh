#!/usr/bin/env bash
# Build the local control-plane binaries (etcd, kube-apiserver, kube-scheduler, kwok) from the
# wrapper Go modules next to this script, into a cache directory outside the checkout:
#
#   $HAMI_CACHE/k8s-<key>/{etcd,kube-apiserver,kube-scheduler,kwok,kwok-stages.yaml,manifest.json}
#
# <key> hashes the Go version, every wrapper go.mod/go.sum, the ldflags and this script's
# recipe revision, so a matching directory means "nothing to do". $HAMI_CACHE/k8s-current.json
# points at the directory of the last successful build; hami.cluster reads it.
#
# Any failure (no Go toolchain, module download refused, compile error) exits non-zero with
# the reason. It never skips silently.
set -euo pipefail

readonly RECIPE_REV=1
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HAMI_CACHE="${HAMI_CACHE:-$HOME/.cache/hami}"
readonly STAGES=(node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)
readonly BINARIES=(etcd kube-apiserver kube-scheduler kwok)
readonly REQUIRED=(manifest.json kwok-stages.yaml)
readonly START=$SECONDS

readonly LABEL=cluster-bin
# shellcheck source=hack/k8s/lib.sh
source "$HERE/lib.sh"

cache_key() {
  {
    echo "recipe $RECIPE_REV"
    "$GO" version
    echo "ldflags $LDFLAGS_KUBE"
    printf 'stage %s\n' "${STAGES[@]}"
    cat "$HERE"/{kube,etcd,kwok}/go.{mod,sum}
  } | sha256sum | cut -c1-16
}

download_modules() { # download only what the builds below need
  run_go "download modules for etcd" etcd "$WORK/download-etcd.log" list -deps -f '' go.etcd.io/etcd/server/v3
  run_go "download modules for kwok" kwok "$WORK/download-kwok.log" list -deps -f '' sigs.k8s.io/kwok/cmd/kwok
  run_go "download modules for kube-apiserver/kube-scheduler" kube "$WORK/download-kube.log" \
    list -deps -f '' k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler
}

build_all() {
  run_go "build etcd $ETCD_VERSION" etcd "$WORK/build-etcd.log" \
    build -v -trimpath -ldflags "-s -w" -o "$WORK/out/etcd" go.etcd.io/etcd/server/v3
  run_go "build kwok $KWOK_VERSION" kwok "$WORK/build-kwok.log" \
    build -v -trimpath -ldflags "-s -w" -o "$WORK/out/kwok" sigs.k8s.io/kwok/cmd/kwok
  run_go "build kube-apiserver + kube-scheduler $K8S_VERSION (the long one)" kube "$WORK/build-kube.log" \
    build -v -trimpath -ldflags "$LDFLAGS_KUBE" -o "$WORK/out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler
}

write_stages() {
  local kwok_dir f
  kwok_dir="$(cd "$HERE/kwok" && "$GO" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  [[ -d "$kwok_dir/kustomize/stage" ]] || die "kwok stage files not found under $kwok_dir"
  for f in "${STAGES[@]}"; do
    echo "---"
    echo "# from sigs.k8s.io/kwok@$KWOK_VERSION kustomize/stage/$f"
    cat "$kwok_dir/kustomize/stage/$f"
  done >"$WORK/out/kwok-stages.yaml"
}

write_manifest() {
  cat >"$WORK/out/manifest.json" <<EOF
{
  "key": "$KEY",
  "go": "$("$GO" env GOVERSION)",
  "kubernetes": "$K8S_VERSION",
  "etcd": "$ETCD_VERSION",
  "kwok": "$KWOK_VERSION",
  "build_seconds": $((SECONDS - START)),
  "binaries": ["etcd", "kube-apiserver", "kube-scheduler", "kwok"],
  "stages": "kwok-stages.yaml"
}
EOF
}

announce() {
  say "Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, $("$GO" version)"
  say "NOTE: a first (cold) build takes many minutes: about 12-15 min on 2 cores, ~5 GB of disk."
  say "      Later runs reuse the cache and finish in well under a second."
}

produce() { # produce <out dir>
  download_modules
  build_all
  write_stages
  smoke_test "$1" etcd kube-apiserver kube-scheduler kwok
  write_manifest
}

main() {
  go_env
  K8S_VERSION="$(module_version kube k8s.io/kubernetes)"
  ETCD_VERSION="$(module_version etcd go.etcd.io/etcd/server/v3)"
  KWOK_VERSION="$(module_version kwok sigs.k8s.io/kwok)"
  LDFLAGS_KUBE="$(ldflags_kube "$K8S_VERSION")"
  KEY="$(cache_key)"
  cached_build k8s "control-plane binaries"
}

main "$@"
