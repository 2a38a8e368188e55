#!/usr/bin/env bash
# Build the helm CLI from the wrapper Go module next to this script (hack/helm/module, pinned
# helm.sh/helm/v3 with a committed go.sum) into a cache directory outside the checkout:
#
#   $HAMI_CACHE/helm-<key>/{helm,manifest.json}
#
# <key> hashes the Go version, go.mod/go.sum, the ldflags and this script's recipe revision, so
# a matching directory means "nothing to do". $HAMI_CACHE/helm-current.json points at the
# directory of the last successful build; tests/chart reads it. Go caches (GOMODCACHE,
# GOCACHE) are shared with hack/k8s/build.sh.
#
# Any failure (no Go toolchain, module download refused, compile error) exits non-zero with
# the reason. It never skips silently.
set -euo pipefail

readonly RECIPE_REV=1
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly MOD="$HERE/module"
readonly HAMI_CACHE="${HAMI_CACHE:-$HOME/.cache/hami}"
readonly START=$SECONDS

say() { printf 'helm-bin [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
die() {
  printf '\nhelm-bin: ERROR: %s\n' "$*" >&2
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
helm (for the chart tests in tests/chart) cannot be built without them."
  fi
  echo "$go"
}

main() {
  GO="$(find_go)"
  local minor
  minor="$("$GO" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
  [[ -n "$minor" && "$minor" -ge 26 ]] || die "Go >= 1.26 is needed; found: $("$GO" version)"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
  export GOMODCACHE="${GOMODCACHE:-$HAMI_CACHE/go/mod}" GOCACHE="${GOCACHE:-$HAMI_CACHE/go/build}"
  HELM_VERSION="$(sed -n 's#^[[:space:]]*\(require \)\{0,1\}helm.sh/helm/v3 \(v[^ ]*\).*#\2#p' "$MOD/go.mod" | head -n1)"
  [[ -n "$HELM_VERSION" ]] || die "helm.sh/helm/v3 is not required in $MOD/go.mod"
  # as helm's own Makefile: the version, and the Kubernetes version `helm template` and
  # `helm lint` assume by default (from the client-go it links: v0.37 → 1.37)
  local v=helm.sh/helm/v3/internal/version kminor
  kminor="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$MOD/go.mod" | head -n1)"
  [[ -n "$kminor" ]] || die "k8s.io/client-go is not in $MOD/go.mod"
  LDFLAGS="-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean"
  LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kminor"
  LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kminor"
  KEY="$({
    echo "recipe $RECIPE_REV"
    "$GO" version
    echo "ldflags $LDFLAGS"
    cat "$MOD"/go.{mod,sum} "$MOD"/*.go
  } | sha256sum | cut -c1-16)"
  local dest="$HAMI_CACHE/helm-$KEY"
  if [[ -x "$dest/helm" && -f "$dest/manifest.json" ]]; then
    write_pointer "$dest"
    say "helm is cached: $dest/helm"
    return 0
  fi
  mkdir -p "$HAMI_CACHE" "$GOMODCACHE" "$GOCACHE"
  exec 9>"$HAMI_CACHE/helm-build.lock"
  if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    say "another build holds $HAMI_CACHE/helm-build.lock; waiting for it"
    flock 9
    if [[ -x "$dest/helm" && -f "$dest/manifest.json" ]]; then
      write_pointer "$dest"
      say "helm is cached: $dest/helm"
      return 0
    fi
  fi
  say "building helm $HELM_VERSION into $dest ($("$GO" version))"
  say "NOTE: a first (cold) build takes a few minutes on 2 cores; later runs reuse the cache."
  rm -rf "$HAMI_CACHE"/helm-*.tmp.*
  WORK="$(mktemp -d "$HAMI_CACHE/helm-$KEY.tmp.XXXXXX")"
  mkdir -p "$WORK/out"
  local log="$WORK/build.log" rc=0 pid next=$((SECONDS + 30))
  say "go build helm.sh/helm/v3/cmd/helm (log: $log)"
  (cd "$MOD" && exec "$GO" build -v -trimpath -ldflags "$LDFLAGS" -o "$WORK/out/helm" \
    helm.sh/helm/v3/cmd/helm) >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      next=$((SECONDS + 30))
      say "  ... still building ($(grep -c -v '^go: ' "$log" || true) packages compiled so far)"
    fi
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    tail -n 40 "$log" >&2
    if grep -qE 'dial tcp|GOPROXY|proxy\.|lookup |no such host|i/o timeout|TLS handshake|verifying .*: |SECURITY ERROR|checksum mismatch' "$log"; then
      die "building helm failed while downloading or verifying Go modules (log above: $log).
Check that the Go module proxy is reachable (GOPROXY=$("$GO" env GOPROXY)) and that go.sum is intact."
    fi
    die "building helm failed with exit code $rc (full log: $log)"
  fi
  local got
  got="$("$WORK/out/helm" version --short 2>&1)" || die "helm version failed: $got"
  say "  helm version: $got"
  [[ "$got" == "$HELM_VERSION"* ]] || die "built helm reports '$got', expected $HELM_VERSION"
  cat >"$WORK/out/manifest.json" <<EOM
{
  "key": "$KEY",
  "go": "$("$GO" env GOVERSION)",
  "helm": "$HELM_VERSION",
  "build_seconds": $((SECONDS - START))
}
EOM
  rm -rf "$dest"
  mv "$WORK/out" "$dest"
  rm -rf "$WORK"
  write_pointer "$dest"
  say "done: $dest/helm"
}

write_pointer() { # write_pointer <dir>
  local tmp="$HAMI_CACHE/helm-current.json.$$"
  printf '{"dir": "%s", "key": "%s"}\n' "$1" "$KEY" >"$tmp"
  mv -f "$tmp" "$HAMI_CACHE/helm-current.json"
}

main "$@"
