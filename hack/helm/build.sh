#!/usr/bin/env bash
# Build the helm CLI from the wrapper Go module next to this script (hack/helm/module, pinned
# helm.sh/helm/v3 with a committed go.sum) into a cache directory outside the checkout:
#
#   $HAMI_CACHE/helm-<key>/{helm,manifest.json}
#
# <key> hashes the Go version, go.mod/go.sum, the ldflags and this script's recipe revision, so
# a matching directory means "nothing to do". $HAMI_CACHE/helm-current.json points at the
# directory of the last successful build; tests/chart reads it. Go caches (GOMODCACHE,
# GOCACHE) and the build steps (hack/k8s/lib.sh) are shared with hack/k8s/build.sh.
#
# Any failure (no Go toolchain, module download refused, compile error) exits non-zero with
# the reason. It never skips silently.
set -euo pipefail

readonly RECIPE_REV=1
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly MOD="$HERE/module"
readonly HAMI_CACHE="${HAMI_CACHE:-$HOME/.cache/hami}"
readonly BINARIES=(helm)
readonly REQUIRED=(manifest.json)
readonly START=$SECONDS

readonly LABEL=helm-bin
# shellcheck source=hack/k8s/lib.sh
source "$HERE/../k8s/lib.sh"

announce() {
  say "helm $HELM_VERSION, $("$GO" version)"
  say "NOTE: a first (cold) build takes a few minutes on 2 cores; later runs reuse the cache."
}

produce() { # produce <out dir>
  run_go "go build helm.sh/helm/v3/cmd/helm" module "$WORK/build.log" \
    build -v -trimpath -ldflags "$LDFLAGS" -o "$1/helm" helm.sh/helm/v3/cmd/helm
  local got
  got="$("$1/helm" version --short 2>&1)" || die "helm version failed: $got"
  say "  helm version: $got"
  [[ "$got" == "$HELM_VERSION"* ]] || die "built helm reports '$got', expected $HELM_VERSION"
  cat >"$1/manifest.json" <<EOM
{
  "key": "$KEY",
  "go": "$("$GO" env GOVERSION)",
  "helm": "$HELM_VERSION",
  "build_seconds": $((SECONDS - START))
}
EOM
}

main() {
  go_env
  HELM_VERSION="$(module_version module helm.sh/helm/v3)"
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
  cached_build helm "helm"
}

main "$@"
