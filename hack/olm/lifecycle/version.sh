#!/usr/bin/env bash
# Prints the OLM v0 version (e.g. v0.46.0) that build.sh builds: the one requirement of
# github.com/operator-framework/operator-lifecycle-manager in this directory's go.mod.
set -euo pipefail
gomod="$(cd "$(dirname "$0")" && pwd)/go.mod"
version=$(awk '$1 == "github.com/operator-framework/operator-lifecycle-manager" { print $2 }' "$gomod")
if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "error: cannot read one operator-lifecycle-manager requirement from $gomod (got '${version//$'\n'/ }')" >&2
  exit 1
fi
echo "$version"
