# shellcheck shell=bash disable=SC2034
# (SC2034: the settings are used by the scripts that source this file.)
# Shared settings and helpers of the local single-node cluster (up.sh, down.sh, deploy.sh, smoke.sh).
# Everything the cluster writes lives under $LOCAL_CLUSTER_DIR; every listener is on 127.0.0.1.
# Sourced, not executed.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL_CLUSTER_DIR=${LOCAL_CLUSTER_DIR:-/var/tmp/dwbackup-local-cluster}
# The Kubernetes version is hack/k8s/go.mod's (hack/k8s/version.sh); a different K8S_VERSION fails.
K8S_VERSION=$("$REPO_ROOT/hack/k8s/version.sh" "${K8S_VERSION:-}") || exit 1
K8S_BIN=${K8S_BIN:-$REPO_ROOT/bin/k8s/$K8S_VERSION-linux-amd64}
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}

# Ports away from the usual defaults, so the cluster does not collide with envtest, a developer's
# own kubelet or registry. All of them bind 127.0.0.1 only.
APISERVER_PORT=${APISERVER_PORT:-16443}
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
REGISTRY_PORT=${REGISTRY_PORT:-5001}
KUBELET_PORT=${KUBELET_PORT:-20250}
KUBELET_HEALTHZ_PORT=${KUBELET_HEALTHZ_PORT:-20248}
KCM_PORT=${KCM_PORT:-20257}
SCHEDULER_PORT=${SCHEDULER_PORT:-20259}

LOCAL_REGISTRY=127.0.0.1:$REGISTRY_PORT
PAUSE_IMAGE=$LOCAL_REGISTRY/dwbackup/pause:local
# The node name must equal the CN of the kubelet's client certificate (NodeRestriction) and resolve
# to 127.0.0.1, because the API server reaches the kubelet by hostname (docs/local-cluster.md).
NODE_NAME=${NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}

PKI=$LOCAL_CLUSTER_DIR/pki
PIDS=$LOCAL_CLUSTER_DIR/pids
LOGS=$LOCAL_CLUSTER_DIR/logs
SAVED=$LOCAL_CLUSTER_DIR/saved
CONTAINERD_DIR=$LOCAL_CLUSTER_DIR/containerd
CONTAINERD_SOCK=$CONTAINERD_DIR/containerd.sock
KUBELET_DIR=$LOCAL_CLUSTER_DIR/kubelet
KUBECONFIG_ADMIN=$LOCAL_CLUSTER_DIR/kubeconfig

# Host paths that kubelet or containerd use whatever they are told; down.sh removes the ones up.sh
# found absent (docs/local-cluster.md).
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /run/containerd)
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
KUBE_CHAINS=(KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT)
# Stop order: the node before the control plane, the registry last.
COMPONENTS=(kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd registry)

_t0=${_t0:-$EPOCHREALTIME}
export _t0

# since T: seconds elapsed since the EPOCHREALTIME value T, one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[%6ss] %s\n' "$(since "$_t0")" "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# step NAME CMD...: runs one step and logs how long it took.
# finish_run NAME RC HINT: the end of a run on the local cluster (make test-e2e, make test-olm):
# tears the cluster down unless KEEP_CLUSTER=1 (a failed tear-down fails the run), says how the
# run ended, with HINT (where its logs are) when it failed, and exits with its status.
finish_run() {
  local name=$1 rc=$2 hint=$3
  if [ "${KEEP_CLUSTER:-}" = 1 ]; then
    log "KEEP_CLUSTER=1: the cluster stays up (export KUBECONFIG=$KUBECONFIG_ADMIN; make local-down)"
  else
    step "tear the cluster down" "$REPO_ROOT/hack/local-cluster/down.sh" || rc=1
  fi
  if [ "$rc" = 0 ]; then
    log "$name passed in $(since "$_t0")s"
  else
    log "$name FAILED (exit $rc) after $(since "$_t0")s; $hint"
  fi
  exit "$rc"
}

step() {
  local name=$1 t
  shift
  t=$EPOCHREALTIME
  log "$name ..."
  "$@"
  log "$name: done in $(since "$t")s"
}

require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (containerd, runc, kubelet mounts and iptables need it); try: sudo $0"
}

kctl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# mark_stopped NAMESPACE NAME ID sets a DevWorkspace's status the way DWO does for a stopped
# workspace: phase Stopped, its id, and Started=False since now.
mark_stopped() {
  kctl -n "$1" patch devworkspace "$2" --subresource=status --type merge -p "{\"status\": {
    \"phase\": \"Stopped\", \"devworkspaceId\": \"$3\", \"message\": \"Workspace is stopped\",
    \"conditions\": [{\"type\": \"Started\", \"status\": \"False\", \"reason\": \"\",
      \"message\": \"Workspace is stopped\", \"lastTransitionTime\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]}}" >/dev/null
}

# running PID: the process exists and is not a zombie waiting for its new parent to reap it.
running() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# pid_alive NAME: the process recorded for NAME is running and is still the binary we started (a
# recycled PID must never be killed).
pid_alive() {
  local f=$PIDS/$1.pid pid exe
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  running "$pid" || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)}
  [ "$exe" = "$(cat "$PIDS/$1.exe" 2>/dev/null)" ]
}

# port_owner PORT: prints the process listening on 127.0.0.1:PORT (or any address), if any.
port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 pid \2/p' | head -n1
}

# check_port NAME PORT: fails clearly when another process holds PORT.
check_port() {
  local owner
  [ -n "$(ss -Hltn "sport = :$2" 2>/dev/null)" ] || return 0
  owner=$(port_owner "$2")
  die "port $2 (for $1) is in use by ${owner:-another process}; stop it, or set the port variable (see hack/local-cluster/lib.sh)"
}

# close_inherited_fds closes every file descriptor above 2 of the current (sub)shell. A daemon must
# not keep what its starter had open: the descriptor of `flock /var/tmp/dwbackup-e2e.lock make ...`
# would otherwise hold that lock for as long as the cluster runs, long after the command ended.
close_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then
      eval "exec $fd>&-" 2>/dev/null || true
    fi
  done
}

# start_bg NAME BINARY ARGS...: starts a daemon in its own session (so it outlives this script and
# a Ctrl-C of it), with no descriptor of ours but its log (close_inherited_fds), and records its
# PID and binary for down.sh.
start_bg() {
  local name=$1 bin=$2 pid
  shift 2
  mkdir -p "$PIDS" "$LOGS"
  # Not a process group leader here, so setsid execs in place and $! is the daemon's own PID.
  (close_inherited_fds && exec setsid "$bin" "$@") >>"$LOGS/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  readlink -f "$bin" >"$PIDS/$name.exe"
  sleep 0.2
  [ -d "/proc/$pid" ] || die "$name exited at once; see $LOGS/$name.log: $(tail -n 5 "$LOGS/$name.log")"
}

# stop_pid NAME: SIGTERM, then SIGKILL after a grace period, for a process we recorded.
stop_pid() {
  local name=$1 pid
  if ! pid_alive "$name"; then
    rm -f "$PIDS/$name.pid" "$PIDS/$name.exe"
    return 0
  fi
  pid=$(cat "$PIDS/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    running "$pid" || break
    sleep 0.2
  done
  if running "$pid"; then
    log "$name (pid $pid) ignored SIGTERM for 10s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  log "stopped $name (pid $pid)"
  rm -f "$PIDS/$name.pid" "$PIDS/$name.exe"
}

# poll SECONDS CMD...: retries CMD until it succeeds (0) or SECONDS pass (1).
poll() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

# wait_for DESCRIPTION SECONDS CMD...: polls CMD until it succeeds, else fails the script.
wait_for() {
  local what=$1 secs=$2
  shift 2
  poll "$secs" "$@" || die "timed out after ${secs}s waiting for $what"
}

# tls_get PORT PATH: a loopback HTTPS GET with the admin client certificate.
tls_get() {
  curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$1$2"
}
