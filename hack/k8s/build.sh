#!/usr/bin/env bash
# Builds pinned Kubernetes binaries from Go modules into an output directory,
# skipping any that already exist. Usage: build.sh OUTDIR NAME...
# Names: etcd kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler
# The version is hack/k8s/go.mod's k8s.io/kubernetes (hack/k8s/version.sh); a K8S_VERSION in the
# environment that differs from it is an error, not another version.
set -euo pipefail
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
version=$("$here/version.sh" "${K8S_VERSION:-}")
IFS=. read -r major minor _ <<<"$version"
mkdir -p "$out"
out=$(cd "$out" && pwd)
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
for name in "$@"; do
  if [ -x "$out/$name" ]; then continue; fi
  echo "building $name into $out (first time takes minutes)" >&2
  case $name in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;;
    *) pkg=k8s.io/kubernetes/cmd/$name ;;
  esac
  (cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
done
