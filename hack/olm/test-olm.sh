#!/usr/bin/env bash
# make test-olm: the operator installed, upgraded and uninstalled through a real Operator Lifecycle
# Manager on the local cluster (docs/olm-lifecycle.md). Holds the local cluster's lock
# (/var/tmp/dwbackup-e2e.lock) for its whole use of the cluster, brings the cluster up (reusing a
# running one), pushes the operator images and writes the local catalog (make olm-local), installs OLM's
# CRDs, runs OLM v0's olm and catalog operators and `opm serve` as processes on this host (the
# cluster has no pod network: OLM's own pods would be hostNetwork processes all the same), then the
# OLM suite (test/e2e/olm_test.go, build tag olm). On exit, pass or fail: the operator is
# uninstalled, every process it started is stopped by PID, and the cluster torn down unless
# KEEP_CLUSTER=1. Needs the binaries OLM_BIN/olm, OLM_BIN/catalog, OPM, ORAS (make test-olm builds them).
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "$0")/../local-cluster/lib.sh"

MAKE=${MAKE:-make}
ORAS=${ORAS:-$REPO_ROOT/bin/oras}
OPM=${OPM:?OPM must name the opm binary (make test-olm sets it)}
OLM_BIN=${OLM_BIN:?OLM_BIN must name the directory of olm and catalog (make test-olm sets it)}
OLM_TIMEOUT=${OLM_TIMEOUT:-30m}
E2E_LOCK=${E2E_LOCK:-/var/tmp/dwbackup-e2e.lock}
# OLM's namespace (its cleanup and global catalog namespace, as in OLM's own manifests).
OLM_NAMESPACE=olm
# opm serves the catalog over gRPC on this port; OLM's operators serve health and metrics on :8080
# (olm) and :8443 (catalog, with a self-signed certificate): all three are fixed in OLM's code to
# listen on every address, so the ports must be free.
OPM_PORT=${OPM_PORT:-50051}
OLM_DIR=$LOCAL_CLUSTER_DIR/olm
# The manager's labels (config/manager), whoever deployed it.
OPERATOR_LABELS=app.kubernetes.io/name=devworkspace-backup-operator,control-plane=controller-manager
STARTED=()

# lock_held_by_ancestor: the lock is already held by `flock` around this script (a flock in
# /proc/locks whose PID is one of our ancestors). Taking it again would wait for ever.
lock_held_by_ancestor() {
  local ino holders p=$$
  [ -e "$E2E_LOCK" ] || return 1
  ino=$(stat -c %i "$E2E_LOCK")
  holders=$(awk -v ino="$ino" '$2 == "FLOCK" { n = split($6, a, ":"); if (a[n] == ino) print $5 }' /proc/locks)
  while [ "$p" -gt 1 ]; do
    if grep -qx "$p" <<<"$holders"; then return 0; fi
    p=$(awk '$1 == "PPid:" { print $2 }' "/proc/$p/status")
  done
  return 1
}

take_lock() {
  if lock_held_by_ancestor; then
    log "the cluster lock $E2E_LOCK is held by our caller"
    return 0
  fi
  exec 9>>"$E2E_LOCK"
  log "waiting for the cluster lock $E2E_LOCK (other users of the local cluster) ..."
  flock 9
}

# start_child NAME BINARY ARGS...: a process of this run, with no descriptor of ours but its log
# (the lock's must not outlive us), stopped by PID on exit.
start_child() {
  local name=$1 bin=$2
  shift 2
  mkdir -p "$LOGS"
  (close_inherited_fds && exec "$bin" "$@") >"$LOGS/$name.log" 2>&1 </dev/null &
  STARTED+=("$name:$!")
  sleep 0.2
  running "$!" || die "$name exited at once: $(tail -n 5 "$LOGS/$name.log")"
}

stop_children() {
  local entry name pid
  for entry in "${STARTED[@]}"; do
    name=${entry%%:*} pid=${entry#*:}
    running "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    poll 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  done
  STARTED=()
}

# uninstall_leftovers: an interrupted run must not leave an operator that OLM installed running
# beside the next one (make test-e2e deploys its own). Runs while OLM's operators still run.
uninstall_leftovers() {
  kctl get crd clusterserviceversions.operators.coreos.com >/dev/null 2>&1 || return 0
  kctl delete subscriptions.operators.coreos.com,clusterserviceversions.operators.coreos.com -A --all \
    --ignore-not-found --wait=false >/dev/null 2>&1 || true
  poll 60 no_operator_pods || log "warning: operator pods still present: $(operator_pods)"
  remove_olm_roles
}

# remove_olm_roles: OLM aggregates roles for the operator's CRDs into the built-in admin, edit and
# view (create, update, patch, delete for edit: more than config/rbac grants namespace users,
# docs/olm-lifecycle.md). They outlive the uninstall (owned by the CRDs), so the next make test-e2e
# on this cluster would see them: remove this run's.
remove_olm_roles() {
  local roles
  roles=$(kctl get clusterroles -l olm.managed=true -o name |
    grep -E '^clusterrole.rbac.authorization.k8s.io/([a-z]+\.backup\.dwbackup\.io-v1alpha1-|olm\.og\.dwbackup\.)' || true)
  # shellcheck disable=SC2086 # one argument per role
  [ -z "$roles" ] || kctl delete $roles --ignore-not-found >/dev/null
}

operator_pods() { kctl get pods -A -l "$OPERATOR_LABELS" -o name; }
no_operator_pods() { [ -z "$(operator_pods)" ]; }

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -s "$KUBECONFIG_ADMIN" ] && tls_get "$APISERVER_PORT" /readyz >/dev/null 2>&1; then
    uninstall_leftovers
  fi
  stop_children
  finish_run test-olm "$rc" "logs: $LOGS/olm-suite.log, $LOGS/olm-*.log"
}

preflight() {
  require_root
  local f
  for f in "$OLM_BIN/olm" "$OLM_BIN/catalog" "$OPM" "$ORAS"; do
    [ -x "$f" ] || die "no $f: run make test-olm (it builds the tools)"
  done
}

check_ports() {
  check_port "opm serve" "$OPM_PORT"
  check_port "OLM's olm operator" 8080
  check_port "OLM's catalog operator" 8443
}

# remove_deployed_operator: the operator of make deploy-local (config/local, one Deployment or more)
# would reconcile the same objects, and its host ports are the ones the OLM-installed one uses.
remove_deployed_operator() {
  kctl delete deployments -A -l "$OPERATOR_LABELS" --ignore-not-found >/dev/null
  wait_for "no operator pod" 120 no_operator_pods
}

install_crds() {
  local olm_module
  kctl apply --server-side -f "$REPO_ROOT/test/crd/workspace.devfile.io_devworkspaces.yaml" >/dev/null
  # OLM's CRDs are part of the module the binaries are built from (the same version).
  olm_module=$(cd "$REPO_ROOT/hack/olm/lifecycle" && GOTOOLCHAIN=local go list -m -f '{{.Dir}}' \
    github.com/operator-framework/operator-lifecycle-manager)
  kctl apply --server-side --force-conflicts -f "$olm_module/deploy/chart/crds/" >/dev/null
  kctl wait --for=condition=Established crd --all --timeout=120s >/dev/null
  kctl get namespace "$OLM_NAMESPACE" >/dev/null 2>&1 || kctl create namespace "$OLM_NAMESPACE" >/dev/null
}

# local_catalog: the operator images of both releases (this tree's and PREVIOUS_COMMIT's) in the
# cluster's registry and the local variant of both bundles and their catalog, pinned to them by
# digest (make olm-local, docs/olm.md).
local_catalog() {
  "$MAKE" --no-print-directory olm-local DIR="$OLM_DIR" LOCAL_APISERVER_PORT="$APISERVER_PORT"
  [ -d "$OLM_DIR/catalog" ] || die "make olm-local wrote no $OLM_DIR/catalog"
}

# start_olm runs OLM as its Deployments would (deploy/upstream/quickstart/olm.yaml of the module),
# with the admin kubeconfig. Images OLM would only need for catalogs it runs itself (this one is
# served at an address) or bundles it unpacks (its bundles carry their objects) are the local
# pause image: nothing is ever pulled from outside.
start_olm() {
  mkdir -p "$OLM_DIR/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$OLM_DIR/tls/tls.key" -out "$OLM_DIR/tls/tls.crt" >/dev/null 2>&1
  start_child olm-opm "$OPM" serve "$OLM_DIR/catalog" --port "$OPM_PORT" \
    --termination-log "$LOGS/olm-opm.termination" --pprof-addr 127.0.0.1:0
  KUBECONFIG=$KUBECONFIG_ADMIN OPERATOR_NAMESPACE=$OLM_NAMESPACE OPERATOR_NAME=olm-operator \
    start_child olm-olm "$OLM_BIN/olm" --namespace "$OLM_NAMESPACE" --writeStatusName "" \
    --writePackageServerStatusName ""
  start_child olm-catalog "$OLM_BIN/catalog" --kubeconfig "$KUBECONFIG_ADMIN" --namespace "$OLM_NAMESPACE" \
    --writeStatusName "" --configmapServerImage "$PAUSE_IMAGE" --opmImage "$PAUSE_IMAGE" \
    --util-image "$PAUSE_IMAGE" --tls-cert "$OLM_DIR/tls/tls.crt" --tls-key "$OLM_DIR/tls/tls.key"
  wait_for "opm serve on :$OPM_PORT" 120 port_listening "$OPM_PORT"
  wait_for "olm's /healthz" 120 curl -fsS --max-time 2 http://127.0.0.1:8080/healthz
  wait_for "catalog's /healthz" 120 curl -fsSk --max-time 2 https://127.0.0.1:8443/healthz
}

port_listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }

run_suite() {
  OLM_CATALOG_DIR=$OLM_DIR/catalog OLM_CATALOG_ADDRESS=127.0.0.1:$OPM_PORT \
    RELEASE_FINALIZERS=$REPO_ROOT/hack/olm/release-finalizers.sh KUBECTL=$K8S_BIN/kubectl ORAS=$ORAS \
    LOCAL_CLUSTER_DIR=$LOCAL_CLUSTER_DIR REGISTRY_PORT=$REGISTRY_PORT \
    go test -tags olm ./test/e2e/ -run '^TestOLM$' -v -ginkgo.v -timeout "$OLM_TIMEOUT" 2>&1 |
    tee "$LOGS/olm-suite.log"
}

main() {
  preflight
  cd "$REPO_ROOT"
  take_lock
  trap teardown EXIT
  trap 'exit 130' INT TERM
  step "local cluster (make local-up)" "$MAKE" --no-print-directory local-up
  export PATH=$K8S_BIN:$PATH # release-finalizers.sh's kubectl
  check_ports
  step "images and the local catalog (make olm-local)" local_catalog
  step "remove the operator make deploy-local deployed" remove_deployed_operator
  step "DevWorkspace and OLM CRDs" install_crds
  step "opm serve, olm and catalog operators" start_olm
  step "OLM suite" run_suite
}

main "$@"
