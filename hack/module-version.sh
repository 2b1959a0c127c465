#!/usr/bin/env bash
# Prints the version (e.g. v1.73.0) that a tools module pins for MODULE: its one requirement of
# MODULE in GOMOD. The tools modules under hack/ build their binaries into bin/<name>-<version>,
# so this is also the key under which a built binary is reused. Usage: module-version.sh GOMOD MODULE
set -euo pipefail
gomod=$1 module=$2
version=$(awk -v m="$module" '$1 == m { print $2 }' "$gomod")
if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "error: cannot read one $module requirement from $gomod (got '${version//$'\n'/ }')" >&2
  exit 1
fi
echo "$version"
