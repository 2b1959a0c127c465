#!/usr/bin/env bash
# make test-e2e: brings the local cluster up (reusing a running one), deploys the operator as users
# do (make deploy-local), runs the e2e suite (test/e2e, build tag e2e) and tears the cluster down
# on exit, pass or fail, unless KEEP_CLUSTER=1. The suite's output is also kept in
# $LOCAL_CLUSTER_DIR/logs/e2e.log (down.sh keeps the state directory).
# Extra `go test` arguments: E2E_ARGS, e.g. E2E_ARGS='-ginkgo.focus=restore'. Without them the
# specs labelled "load" (several minutes; make test-load) are left out.
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "$0")/lib.sh"

MAKE=${MAKE:-make}
ORAS=${ORAS:-$REPO_ROOT/bin/oras}
E2E_TIMEOUT=${E2E_TIMEOUT:-40m}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  finish_run test-e2e "$rc" "suite log: $LOCAL_CLUSTER_DIR/logs/e2e.log"
}

run_suite() {
  mkdir -p "$LOCAL_CLUSTER_DIR/logs"
  # shellcheck disable=SC2086 # E2E_ARGS is a list of arguments
  LOCAL_CLUSTER_DIR=$LOCAL_CLUSTER_DIR REGISTRY_PORT=$REGISTRY_PORT ORAS=$ORAS KUBECTL=$K8S_BIN/kubectl \
    go test -tags e2e ./test/e2e/ -v -ginkgo.v -timeout "$E2E_TIMEOUT" ${E2E_ARGS:--ginkgo.label-filter=!load} 2>&1 |
    tee "$LOCAL_CLUSTER_DIR/logs/e2e.log"
}

main() {
  require_root
  [ -x "$ORAS" ] || die "no oras at $ORAS: run make oras"
  cd "$REPO_ROOT"
  trap teardown EXIT
  trap 'exit 130' INT TERM
  step "local cluster (make local-up)" "$MAKE" --no-print-directory local-up
  step "operator (make deploy-local)" "$MAKE" --no-print-directory deploy-local
  step "e2e suite" run_suite
}

main "$@"
