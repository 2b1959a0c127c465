#!/usr/bin/env bash
# Deploys the operator to the local cluster the way users deploy it: config/default through the
# config/local overlay, with the image that `make image` pushed pinned by digest (a rebuilt image
# under the same tag would otherwise not roll out, and mover Jobs could run a stale one). Installs
# the DevWorkspace CRD fixture first (a real cluster has DWO's), then waits until the Deployment is
# Available. Usage: LOCAL_IMG=127.0.0.1:5001/dwbackup/devworkspace-backup-operator:dev deploy.sh
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "$0")/lib.sh"

KUSTOMIZE=${KUSTOMIZE:-$REPO_ROOT/bin/kustomize}
LOCAL_IMG=${LOCAL_IMG:-$LOCAL_REGISTRY/dwbackup/devworkspace-backup-operator:dev}
# Read from the rendered manifests (config/default decides them); saved for smoke.sh.
OPERATOR_NAMESPACE=""
OPERATOR_DEPLOYMENT=""
OPERATOR_DEPLOYMENTS=""
# The image name config/local sets; the overlay below renames it to LOCAL_IMG's repository.
LOCAL_OVERLAY_IMAGE=127.0.0.1:5001/dwbackup/devworkspace-backup-operator

preflight() {
  if [ ! -s "$KUBECONFIG_ADMIN" ] || ! tls_get "$APISERVER_PORT" /readyz >/dev/null 2>&1; then
    die "the local cluster is not up: run hack/local-cluster/up.sh (make local-up)"
  fi
  [ -x "$KUSTOMIZE" ] || die "no kustomize at $KUSTOMIZE: run make kustomize"
  [ -s "$LOCAL_CLUSTER_DIR/image.digest" ] || die "no image digest in $LOCAL_CLUSTER_DIR/image.digest: run make image"
}

install_devworkspace_crd() {
  kctl apply --server-side -f "$REPO_ROOT/test/crd/workspace.devfile.io_devworkspaces.yaml" >/dev/null
  kctl wait --for=condition=Established crd/devworkspaces.workspace.devfile.io --timeout=60s >/dev/null
}

# write_overlay: a throwaway kustomization over config/local that pins the image by digest, sets
# the API server port this cluster really uses and the pinned image as MOVER_IMAGE, in every
# manager Deployment (config/local has two).
write_overlay() {
  local dir=$LOCAL_CLUSTER_DIR/deploy digest
  digest=$(tr -d '[:space:]' <"$LOCAL_CLUSTER_DIR/image.digest")
  mkdir -p "$dir"
  cat >"$dir/kustomization.yaml" <<YAML
resources:
- $(realpath --relative-to="$dir" "$REPO_ROOT/config/local")
images:
- name: $LOCAL_OVERLAY_IMAGE
  newName: ${LOCAL_IMG%:*}
  digest: $digest
patches:
- target:
    kind: Deployment
  patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: any
    spec:
      template:
        spec:
          containers:
          - name: manager
            env:
            - name: KUBERNETES_SERVICE_PORT
              value: "$APISERVER_PORT"
            - name: MOVER_IMAGE
              value: ${LOCAL_IMG%:*}@$digest
YAML
  echo "$dir"
}

# find_deployments FILE: sets OPERATOR_NAMESPACE and OPERATOR_DEPLOYMENTS (config/local's manager
# Deployments, sorted; OPERATOR_DEPLOYMENT is the first, config/default's own) from kustomize's
# output (top-level "kind:", "metadata:" with two-space-indented name and namespace).
find_deployments() {
  local found namespaces
  found=$(awk '
    function flush() { if (kind == "Deployment") print ns, name; kind = ""; name = ""; ns = ""; meta = 0 }
    /^---$/ { flush(); next }
    /^kind: / { kind = $2 }
    /^metadata:/ { meta = 1; next }
    /^[^ ]/ { meta = 0 }
    meta && /^  name: / { name = $2 }
    meta && /^  namespace: / { ns = $2 }
    END { flush() }' "$1" | sort)
  namespaces=$(cut -d' ' -f1 <<<"$found" | sort -u)
  if [ -z "$found" ] || [ "$(wc -l <<<"$namespaces")" != 1 ] || [ -z "$namespaces" ]; then
    die "want namespaced Deployments in one namespace in $1, found: $found"
  fi
  OPERATOR_NAMESPACE=$namespaces
  OPERATOR_DEPLOYMENTS=$(cut -d' ' -f2 <<<"$found" | paste -sd' ')
  OPERATOR_DEPLOYMENT=${OPERATOR_DEPLOYMENTS%% *}
  printf 'OPERATOR_NAMESPACE=%s\nOPERATOR_DEPLOYMENT=%s\nOPERATOR_DEPLOYMENTS=%s\n' \
    "$OPERATOR_NAMESPACE" "$OPERATOR_DEPLOYMENT" "$OPERATOR_DEPLOYMENTS" >"$LOCAL_CLUSTER_DIR/deploy/operator.env"
}

# recreate_strategy NAME: config/local switches the Deployments to Recreate (one node, host ports). A
# Deployment made earlier with RollingUpdate keeps its defaulted rollingUpdate block, which a
# server-side apply does not clear (the change is silently not stored): clear it first.
recreate_strategy() {
  local current
  current=$(kctl -n "$OPERATOR_NAMESPACE" get deployment "$1" -o 'jsonpath={.spec.strategy.type}' 2>/dev/null || true)
  if [ -z "$current" ] || [ "$current" = Recreate ]; then return 0; fi
  kctl -n "$OPERATOR_NAMESPACE" patch deployment "$1" --type merge \
    -p '{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}' >/dev/null
}

apply_operator() {
  local dir name
  dir=$(write_overlay)
  "$KUSTOMIZE" build "$dir" >"$dir/rendered.yaml"
  find_deployments "$dir/rendered.yaml"
  grep -A1 "name: KUBERNETES_SERVICE_PORT" "$dir/rendered.yaml" | grep -q "\"$APISERVER_PORT\"" ||
    die "config/local lost KUBERNETES_SERVICE_PORT"
  for name in $OPERATOR_DEPLOYMENTS; do recreate_strategy "$name"; done
  kctl apply --server-side --force-conflicts -f "$dir/rendered.yaml" >/dev/null
}

wait_available() {
  local name
  for name in $OPERATOR_DEPLOYMENTS; do
    if ! kctl -n "$OPERATOR_NAMESPACE" rollout status "deployment/$name" --timeout=180s >/dev/null; then
      kctl -n "$OPERATOR_NAMESPACE" get pods -o wide >&2 || true
      kctl -n "$OPERATOR_NAMESPACE" logs "deployment/$name" --tail=30 >&2 || true
      die "the operator's Deployment $name did not become Available"
    fi
    kctl -n "$OPERATOR_NAMESPACE" wait --for=condition=Available "deployment/$name" --timeout=60s >/dev/null
  done
}

main() {
  preflight
  step "DevWorkspace CRD fixture" install_devworkspace_crd
  step "apply config/local ($LOCAL_IMG@$(cat "$LOCAL_CLUSTER_DIR/image.digest"))" apply_operator
  step "operator Available" wait_available
  log "operator deployed in $(since "$_t0")s: kubectl -n $OPERATOR_NAMESPACE get pods"
}

main "$@"
