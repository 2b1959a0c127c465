#!/usr/bin/env bash
# Builds OLM v0's two operators, olm and catalog, into OUTDIR (bin/olm-<version>), skipping the
# build when both exist. The version is this directory's go.mod requirement of
# github.com/operator-framework/operator-lifecycle-manager (one source). Usage: build.sh OUTDIR
# Both binaries come from ONE go build so the packages they share compile once; -s -w leaves out
# debug information (smaller, faster to link); containers_image_openpgp avoids gpgme (cgo). The
# compile settings are OLM_TOOLS_FLAGS of hack/olm/bundle/bundle.mk: the libraries shared with opm
# compile once.
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -x "$out/olm" ] && [ -x "$out/catalog" ]; then exit 0; fi
echo "building OLM $("$here/../../module-version.sh" "$here/go.mod" github.com/operator-framework/operator-lifecycle-manager) olm and catalog into $out (first time takes minutes)" >&2
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags '-s -w' \
  -tags 'json1 containers_image_openpgp' -o "$tmp/" \
  github.com/operator-framework/operator-lifecycle-manager/cmd/olm \
  github.com/operator-framework/operator-lifecycle-manager/cmd/catalog)
mv "$tmp/olm" "$out/olm"
mv "$tmp/catalog" "$out/catalog"
