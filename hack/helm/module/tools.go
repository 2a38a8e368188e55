//go:build tools

// Package tools pins helm.sh/helm/v3/cmd/helm as a dependency of this wrapper module.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
