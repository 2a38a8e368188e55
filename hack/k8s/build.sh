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
readonly START=$SECONDS

say() { printf 'cluster-bin [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
die() {
  printf '\ncluster-bin: ERROR: %s\n' "$*" >&2
  exit 1
}

find_go() {
  local go="${GO:-}"
  if [[ -z "$go" ]]; then
    go="$(command -v go || true)"
    [[ -n "$go" || ! -x /usr/local/go/bin/go ]] || go=/usr/local/go/bin/go
  fi
  if [[ -z "$go" || ! -x "$go" ]]; then
    die "no usable Go toolchain (GO='${GO:-}', 'go' on PATH: $(command -v go || echo none)).
Install Go >= 1.26 (https://go.dev/dl/) and make sure the Go module proxy is reachable;
the control-plane binaries for the e2e tests cannot be built without them."
  fi
  echo "$go"
}

check_go_version() {
  local minor
  minor="$("$GO" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
  [[ -n "$minor" && "$minor" -ge 26 ]] ||
    die "Go >= 1.26 is needed (kwok v0.8.0 and Kubernetes 1.36 say 'go 1.26.0'); found: $("$GO" version)"
}

module_version() { # module_version <wrapper dir> <module path>
  sed -n "s#^[[:space:]]*\\(require \\)\\{0,1\\}$2 \\(v[^ ]*\\).*#\\2#p" "$HERE/$1/go.mod" | head -n1
}

ldflags_kube() {
  local v="$1" p=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
  local minor
  minor="$(echo "$v" | cut -d. -f2)"
  echo "-s -w -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean" \
    "-X $p.buildDate=2026-01-01T00:00:00Z -X $c.gitVersion=$v -X $c.gitMajor=1 -X $c.gitMinor=$minor"
}

cache_key() {
  {
    echo "recipe $RECIPE_REV"
    "$GO" version
    echo "ldflags $LDFLAGS_KUBE"
    printf 'stage %s\n' "${STAGES[@]}"
    cat "$HERE"/{kube,etcd,kwok}/go.{mod,sum}
  } | sha256sum | cut -c1-16
}

all_present() { # all_present <dir>
  local b
  [[ -f "$1/manifest.json" && -f "$1/kwok-stages.yaml" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x "$1/$b" ]] || return 1; done
}

write_pointer() { # write_pointer <dir>
  local tmp="$HAMI_CACHE/k8s-current.json.$$"
  printf '{"dir": "%s", "key": "%s"}\n' "$1" "$KEY" >"$tmp"
  mv -f "$tmp" "$HAMI_CACHE/k8s-current.json"
}

# run_go <label> <module dir> <log> <go args...>: runs go, printing a heartbeat every 30 s.
run_go() {
  local label="$1" dir="$2" log="$3" pid rc=0 next=$((SECONDS + 30))
  shift 3
  say "$label (log: $log)"
  (cd "$HERE/$dir" && exec "$GO" "$@") >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      next=$((SECONDS + 30))
      say "  ... still on: $label ($(grep -c -v '^go: ' "$log" || true) packages compiled so far)"
    fi
  done
  wait "$pid" || rc=$?
  ((rc == 0)) || go_failed "$label" "$log" "$rc"
  say "  done: $label"
}

go_failed() { # go_failed <label> <log> <exit code>
  tail -n 40 "$2" >&2
  if grep -qE 'dial tcp|GOPROXY|proxy\.|lookup |no such host|i/o timeout|TLS handshake|verifying .*: |SECURITY ERROR|checksum mismatch' "$2"; then
    die "$1 failed while downloading or verifying Go modules (log above: $2).
Check that the Go module proxy is reachable (GOPROXY=$("$GO" env GOPROXY)) and that go.sum is intact."
  fi
  die "$1 failed with exit code $3 (full log: $2)"
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

smoke_test() {
  local b v
  for b in etcd kube-apiserver kube-scheduler kwok; do
    v="$("$WORK/out/$b" --version 2>&1 | head -n1)" || die "$b --version failed: $v"
    say "  $b: $v"
  done
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

main() {
  GO="$(find_go)"
  check_go_version
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
  export GOMODCACHE="${GOMODCACHE:-$HAMI_CACHE/go/mod}" GOCACHE="${GOCACHE:-$HAMI_CACHE/go/build}"
  K8S_VERSION="$(module_version kube k8s.io/kubernetes)"
  ETCD_VERSION="$(module_version etcd go.etcd.io/etcd/server/v3)"
  KWOK_VERSION="$(module_version kwok sigs.k8s.io/kwok)"
  LDFLAGS_KUBE="$(ldflags_kube "$K8S_VERSION")"
  KEY="$(cache_key)"
  local dest="$HAMI_CACHE/k8s-$KEY"
  if all_present "$dest"; then
    write_pointer "$dest"
    say "control-plane binaries are cached: $dest"
    return 0
  fi
  say "building control-plane binaries into $dest"
  say "Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, $("$GO" version)"
  say "NOTE: a first (cold) build takes many minutes: about 12-15 min on 2 cores, ~5 GB of disk."
  say "      Later runs reuse the cache and finish in well under a second."
  mkdir -p "$HAMI_CACHE" "$GOMODCACHE" "$GOCACHE"
  exec 9>"$HAMI_CACHE/k8s-build.lock"
  if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    say "another build holds $HAMI_CACHE/k8s-build.lock; waiting for it"
    flock 9
    if all_present "$dest"; then
      write_pointer "$dest"
      say "control-plane binaries are cached: $dest"
      return 0
    fi
  fi
  rm -rf "$HAMI_CACHE"/k8s-*.tmp.* # leftovers of failed builds (their logs were shown then)
  WORK="$(mktemp -d "$HAMI_CACHE/k8s-$KEY.tmp.XXXXXX")"
  mkdir -p "$WORK/out"
  download_modules
  build_all
  write_stages
  smoke_test
  write_manifest
  rm -rf "$dest"
  mv "$WORK/out" "$dest"
  rm -rf "$WORK"
  write_pointer "$dest"
  say "done: binaries in $dest"
}

main "$@"
