#!/usr/bin/env bash
# Build the kubelet-side device-plugin peer (hack/kubelet/peer, upstream k8s.io/kubelet code)
# into a cache directory outside the checkout and print the binary's path on stdout:
#
#   $HAMI_CACHE/kubelet-peer/<key>/kubelet-peer
#
# <key> hashes the Go version, go.mod, go.sum and the sources, so the binary is rebuilt only
# when one of them changes. Go caches are shared with the control-plane build. Any failure
# exits non-zero with the reason; it never skips.
set -euo pipefail

readonly RECIPE_REV=1
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SRC="$HERE/peer"
readonly HAMI_CACHE="${HAMI_CACHE:-$HOME/.cache/hami}"

die() {
  printf 'kubelet-peer: ERROR: %s\n' "$*" >&2
  exit 1
}

find_go() {
  if [[ -n "${GO:-}" ]]; then echo "$GO"
  elif command -v go >/dev/null 2>&1; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
  else
    die "no Go toolchain found (looked for \$GO, 'go' on PATH and /usr/local/go/bin/go).
Install Go >= 1.26 and make sure the Go module proxy is reachable: the kubelet peer used by
tests/agent/test_kubelet_peer.py is built from k8s.io/kubelet with it."
  fi
}

GO="$(find_go)"
minor="$("$GO" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
[[ -n "$minor" && "$minor" -ge 26 ]] || die "Go >= 1.26 is needed (k8s.io/kubelet v0.36 says 'go 1.26.0'); found: $("$GO" version)"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
export GOMODCACHE="$HAMI_CACHE/go/mod" GOCACHE="$HAMI_CACHE/go/build"

key="$({
  echo "recipe $RECIPE_REV"
  "$GO" version
  cat "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go
} | sha256sum | cut -c1-16)"
out="$HAMI_CACHE/kubelet-peer/$key"
if [[ -x "$out/kubelet-peer" ]]; then
  echo "$out/kubelet-peer"
  exit 0
fi

mkdir -p "$HAMI_CACHE/kubelet-peer"
tmp="$(mktemp -d "$HAMI_CACHE/kubelet-peer/tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
printf 'kubelet-peer: building %s (key %s)\n' "$SRC" "$key" >&2
(cd "$SRC" && "$GO" build -trimpath -ldflags "-s -w" -o "$tmp/kubelet-peer" .) >&2 ||
  die "go build failed in $SRC (is the Go module proxy reachable for the first build?)"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out/kubelet-peer"
