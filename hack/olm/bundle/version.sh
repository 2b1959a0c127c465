#!/usr/bin/env bash
# Prints the operator-registry version (e.g. v1.73.0) that build-opm.sh builds opm from: the one
# requirement of github.com/operator-framework/operator-registry in this directory's go.mod.
set -euo pipefail
gomod="$(cd "$(dirname "$0")" && pwd)/go.mod"
version=$(awk '$1 == "github.com/operator-framework/operator-registry" { print $2 }' "$gomod")
if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "error: cannot read one github.com/operator-framework/operator-registry requirement from $gomod (got '${version//$'\n'/ }')" >&2
  exit 1
fi
echo "$version"
