#!/usr/bin/env bash
# Builds opm, operator-registry's CLI (render, validate, serve), from this directory's go.mod into
# OUT (bin/opm-<version>), skipping the build when OUT exists. Tags: json1 (the SQLite JSON
# functions opm's code uses) and containers_image_openpgp (a pure-Go signature library instead of
# gpgme through cgo). CGO_ENABLED=0 makes a static binary, so the same opm also serves the catalog
# image (hack/olm/bundle/images); what cgo would add is SQLite, which only opm's deprecated sqlite
# catalogs use. The settings are OLM_TOOLS_FLAGS of bundle.mk (shared compiled libraries). Usage:
# build-opm.sh OUT
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$out" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
echo "building opm into $out (first time takes minutes)" >&2
(cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -tags 'json1 containers_image_openpgp' \
  -ldflags "-X github.com/operator-framework/operator-registry/cmd/opm/version.opmVersion=$(../../module-version.sh go.mod github.com/operator-framework/operator-registry)" \
  -o "$out.tmp" github.com/operator-framework/operator-registry/cmd/opm)
mv "$out.tmp" "$out"
