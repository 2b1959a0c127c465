#!/usr/bin/env bash
# Prints the Prometheus version (e.g. v0.316.0) that build.sh builds: the one requirement of
# github.com/prometheus/prometheus in this directory's go.mod.
set -euo pipefail
gomod="$(cd "$(dirname "$0")" && pwd)/go.mod"
version=$(awk '$1 == "github.com/prometheus/prometheus" { print $2 }' "$gomod")
if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "error: cannot read one github.com/prometheus/prometheus requirement from $gomod (got '${version//$'\n'/ }')" >&2
  exit 1
fi
echo "$version"
