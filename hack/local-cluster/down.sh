#!/usr/bin/env bash
# Stops the local cluster that up.sh started and puts the host back as up.sh found it: ends exactly
# the processes it recorded (by PID, plus the containerd shims and containers of its own containerd,
# found through containerd's own PID files), unmounts everything under $LOCAL_CLUSTER_DIR, removes
# the host paths kubelet and containerd created, and restores the iptables chains and sysctls
# kubelet changed. Keeps certificates, etcd data, images and the registry's content for a fast
# warm start; `down.sh --purge` removes the state directory too. Safe to run more than once.
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "$0")/lib.sh"

SHIM_STATE=$CONTAINERD_DIR/state/io.containerd.runtime.v2.task

# stop_containers kills every container task of our containerd while it still answers, so that its
# shims exit by themselves.
stop_containers() {
  pid_alive containerd || return 0
  local ns id
  for ns in $(ctr --address "$CONTAINERD_SOCK" namespaces ls -q 2>/dev/null); do
    for id in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      poll 10 task_stopped "$ns" "$id" || log "warning: task $id did not stop in 10s"
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
  done
}

# task_stopped NS ID: the task has exited (containerd's CRI plugin may already have deleted it).
task_stopped() {
  local status
  status=$(ctr --address "$CONTAINERD_SOCK" -n "$1" tasks ls 2>/dev/null | awk -v id="$2" '$1 == id { print $3 }')
  [ -z "$status" ] || [ "$status" = STOPPED ]
}

# kill_leftover_shims ends shims (and their containers) that survived containerd, identified by
# the PID files containerd keeps in our state dir, and only if the process still names our socket.
kill_leftover_shims() {
  local f pid
  [ -d "$SHIM_STATE" ] || return 0
  while IFS= read -r f; do
    pid=$(cat "$f" 2>/dev/null) || continue
    if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then continue; fi
    case $(basename "$f") in
      shim.pid) tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONTAINERD_SOCK" || continue ;;
      # A container's first process: only if it still sits in a cgroup kubelet made.
      init.pid) grep -q '/kubepods' "/proc/$pid/cgroup" 2>/dev/null || continue ;;
    esac
    log "killing leftover $(basename "$f" .pid) process $pid"
    kill -KILL "$pid" 2>/dev/null || true
  done < <(find "$SHIM_STATE" -maxdepth 3 \( -name shim.pid -o -name init.pid \) 2>/dev/null)
}

# unmount_under DIR: unmounts every mount point below DIR, deepest first.
unmount_under() {
  local dir=$1 m
  [ -d "$dir" ] || return 0
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: could not unmount $m"
  done < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r -u)
}

restore_sysctls() {
  [ -s "$SAVED/sysctl.conf" ] || return 0
  sysctl -q -p "$SAVED/sysctl.conf" >/dev/null
  rm -f "$SAVED/sysctl.conf"
}

# restore_chains IPT TABLE: removes the rules about KUBE-* chains that were not there when up.sh
# saved the table, then the chains it did not have. Other rules are left alone.
restore_chains() {
  local ipt=$1 t=$2 saved=$SAVED/$1.$2 chains line c
  [ -e "$saved" ] || return 0
  chains=$(
    IFS='|'
    echo "${KUBE_CHAINS[*]}"
  )
  # Rules first (appended rules and jumps into our chains), then the chains themselves.
  { "$ipt" -w -t "$t" -S 2>/dev/null || true; } | { grep -E -- "^-A .*($chains)( |$)" || true; } | while IFS= read -r line; do
    grep -qxF -- "$line" "$saved" && continue
    printf '%s\n' "-D${line#-A}" | xargs "$ipt" -w -t "$t" 2>/dev/null || log "warning: $ipt -t $t: could not delete: $line"
  done
  for c in "${KUBE_CHAINS[@]}"; do
    "$ipt" -w -t "$t" -S "$c" >/dev/null 2>&1 || continue
    grep -qxF -- "-N $c" "$saved" && continue
    if ! { "$ipt" -w -t "$t" -F "$c" && "$ipt" -w -t "$t" -X "$c"; }; then
      log "warning: $ipt -t $t: could not remove chain $c"
    fi
  done
  rm -f "$saved"
}

restore_iptables() {
  local ipt t
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do restore_chains "$ipt" "$t"; done
  done
}

# remove_host_paths removes what up.sh found absent: /var/lib/kubelet (device-plugins),
# /var/log/containers, /var/log/pods and /run/containerd (shim sockets).
remove_host_paths() {
  local p
  [ -e "$SAVED/host-paths" ] || return 0
  while IFS= read -r p; do
    if [ -z "$p" ] || [ ! -e "$p" ]; then continue; fi
    unmount_under "$p"
    rm -rf --one-file-system "$p"
  done <"$SAVED/host-paths"
  rm -f "$SAVED/host-paths"
}

# remove_cgroups removes the kubepods cgroup trees kubelet made (empty once the pods are gone).
remove_cgroups() {
  local root
  [ -e "$SAVED/cgroups" ] || return 0
  while IFS= read -r root; do
    if [ -z "$root" ] || [ ! -d "$root" ]; then continue; fi
    find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || log "warning: could not remove every cgroup under $root"
  done <"$SAVED/cgroups"
  rm -f "$SAVED/cgroups"
}

# check_nothing_left warns about any process that still names our state dir (every component and
# shim does) or still sits in a kubelet-made cgroup, and about mounts left under the state dir.
check_nothing_left() {
  local left pid
  # shellcheck disable=SC2009 # matching full command lines against our path, not names
  left=$(ps -eo pid=,stat=,args= | grep -F -- "$LOCAL_CLUSTER_DIR" | grep -v -e ' Z' -e grep -e down.sh || true)
  while IFS= read -r pid; do
    running "$pid" && left+=$'\n'"$pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  done < <(grep -l '/kubepods' /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3)
  [ -z "${left//$'\n'/}" ] || log "warning: still running: $left"
  left=$(awk -v d="$LOCAL_CLUSTER_DIR" 'index($2, d) == 1 { print $2 }' /proc/self/mounts)
  [ -z "$left" ] || log "warning: still mounted: $left"
}

main() {
  require_root
  [ -d "$LOCAL_CLUSTER_DIR" ] || {
    log "nothing to do: $LOCAL_CLUSTER_DIR does not exist"
    return 0
  }
  step "stop kubelet" stop_pid kubelet
  step "stop containers" stop_containers
  local c
  for c in kube-scheduler kube-controller-manager kube-apiserver etcd containerd registry; do
    stop_pid "$c"
  done
  kill_leftover_shims
  step "unmount" unmount_under "$LOCAL_CLUSTER_DIR"
  rm -rf "$LOCAL_CLUSTER_DIR/run/runc"
  remove_host_paths
  remove_cgroups
  restore_iptables
  restore_sysctls
  check_nothing_left
  if [ "${1:-}" = --purge ]; then
    rm -rf --one-file-system "$LOCAL_CLUSTER_DIR"
    log "removed $LOCAL_CLUSTER_DIR"
  fi
  log "cluster down in $(since "$_t0")s"
}

main "$@"
