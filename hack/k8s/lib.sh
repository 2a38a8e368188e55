# Shared pieces of the Go builds under hack/k8s (sourced by build.sh and build-node.sh):
# progress lines, the Go toolchain check, a heartbeat runner that explains download failures,
# and the Kubernetes ldflags. The caller sets START (= $SECONDS at its start) and LABEL.
# shellcheck shell=bash

say() { printf '%s [%4ds] %s\n' "$LABEL" "$((SECONDS - START))" "$*"; }
die() {
  printf '\n%s: ERROR: %s\n' "$LABEL" "$*" >&2
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


# go_env: the environment every build here runs go with (caches outside the checkout).
go_env() {
  GO="$(find_go)"
  check_go_version
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
  export GOMODCACHE="${GOMODCACHE:-$HAMI_CACHE/go/mod}" GOCACHE="${GOCACHE:-$HAMI_CACHE/go/build}"
}

# all_present <dir>: every file of REQUIRED (names relative to <dir>) exists; the binaries
# among them (BINARIES) are executable.
all_present() {
  local f
  for f in "${REQUIRED[@]}"; do [[ -f "$1/$f" ]] || return 1; done
  for f in "${BINARIES[@]}"; do [[ -x "$1/$f" ]] || return 1; done
}

# write_pointer <dir> <prefix>: $HAMI_CACHE/<prefix>-current.json names <dir> (read by hami.cluster).
write_pointer() {
  local tmp="$HAMI_CACHE/$2-current.json.$$"
  printf '{"dir": "%s", "key": "%s"}\n' "$1" "$KEY" >"$tmp"
  mv -f "$tmp" "$HAMI_CACHE/$2-current.json"
}

# cached_build <prefix> <what>: $HAMI_CACHE/<prefix>-$KEY, built by the caller's
# `produce <out dir>` unless already complete. One build per prefix at a time (flock); a
# waiting build re-checks the cache first. `announce` (the caller's) says what is built.
cached_build() {
  local prefix="$1" what="$2" dest="$HAMI_CACHE/$1-$KEY"
  if all_present "$dest"; then
    write_pointer "$dest" "$prefix"
    say "$what: cached in $dest"
    return 0
  fi
  say "building $what into $dest"
  announce
  mkdir -p "$HAMI_CACHE" "$GOMODCACHE" "$GOCACHE"
  exec 9>"$HAMI_CACHE/$prefix-build.lock"
  if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    say "another build holds $HAMI_CACHE/$prefix-build.lock; waiting for it"
    flock 9
    if all_present "$dest"; then
      write_pointer "$dest" "$prefix"
      say "$what: cached in $dest"
      return 0
    fi
  fi
  rm -rf "$HAMI_CACHE/$prefix"-*.tmp.* # leftovers of failed builds (their logs were shown then)
  WORK="$(mktemp -d "$HAMI_CACHE/$prefix-$KEY.tmp.XXXXXX")"
  mkdir -p "$WORK/out"
  produce "$WORK/out"
  rm -rf "$dest"
  mv "$WORK/out" "$dest"
  rm -rf "$WORK"
  write_pointer "$dest" "$prefix"
  say "done: $what in $dest"
}

# smoke_test <dir> <binary...>: each binary answers --version.
smoke_test() {
  local dir="$1" b v
  shift
  for b in "$@"; do
    # the whole output first: `| head -n1` could SIGPIPE the binary and fail under pipefail
    v="$("$dir/$b" --version 2>&1)" || die "$b --version failed: $v"
    say "  $b: ${v%%$'\n'*}"
  done
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

