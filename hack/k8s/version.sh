#!/usr/bin/env bash
# Prints the Kubernetes version the project builds and tests against, without the leading v
# (e.g. 1.2.3). Its one source is the k8s.io/kubernetes requirement in hack/k8s/go.mod, the module
# hack/k8s/build.sh builds the binaries from; the Makefile, build.sh, hack/local-cluster/lib.sh
# and internal/testenv all read it from there (internal/testenv/version_test.go checks they agree).
# To change the version, change that requirement and the staging replaces beside it.
# Usage: version.sh [WANTED]  (WANTED, e.g. a K8S_VERSION override, must equal it, else exit 1)
set -euo pipefail
gomod="$(cd "$(dirname "$0")" && pwd)/go.mod"
# Both forms: `require k8s.io/kubernetes v1.2.3` and the line inside a `require (` block.
version=$(awk '
  $1 == "require" && $2 == "(" { block = 1; next }
  block && $1 == ")" { block = 0; next }
  $1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }
  block && $1 == "k8s.io/kubernetes" { print $2 }
' "$gomod")
if ! [[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]]; then
  echo "error: cannot read one k8s.io/kubernetes v1.x.y requirement from $gomod (got '${version//$'\n'/ }')" >&2
  exit 1
fi
version=${version#v}
wanted=${1:-}
if [ -n "$wanted" ] && [ "$wanted" != "$version" ]; then
  echo "error: K8S_VERSION=$wanted, but hack/k8s/go.mod pins k8s.io/kubernetes v$version and the binaries are built from it." >&2
  echo "Unset K8S_VERSION to use $version; to change the version, edit hack/k8s/go.mod (see hack/k8s/version.sh)." >&2
  exit 1
fi
echo "$version"
