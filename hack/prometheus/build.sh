#!/usr/bin/env bash
# Builds the pinned Prometheus server and promtool into OUTDIR (bin/prometheus-<version>), skipping
# a binary that already exists. The version is this directory's go.mod requirement of
# github.com/prometheus/prometheus (one source). Usage: build.sh OUTDIR NAME...  (prometheus, promtool)
# Prints nothing but progress on stderr; the binaries are OUTDIR/NAME.
set -euo pipefail
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
for name in "$@"; do
  case $name in
    prometheus|promtool) ;;
    *) echo "build.sh: unknown binary $name (prometheus, promtool)" >&2; exit 2 ;;
  esac
  if [ -x "$out/$name" ]; then continue; fi
  echo "building $name into $out (first time takes minutes)" >&2
  # remove_all_sd leaves out every service discovery but static targets (cloud SDKs, the Kubernetes
  # client): the project only tests rules and scrapes a static loopback target.
  (cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -tags remove_all_sd -o "$out/$name.tmp" \
    "github.com/prometheus/prometheus/cmd/$name")
  mv "$out/$name.tmp" "$out/$name"
done
