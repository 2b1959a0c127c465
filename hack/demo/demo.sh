#!/usr/bin/env bash
# make demo / make demo-down. `demo.sh up` brings the local cluster and its registry up (reusing a
# running one), deploys the operator as users do (make deploy-local), creates two namespaces of
# sample workspaces with real files (per-workspace and common storage, plus an ephemeral one), and a
# BackupPolicy that runs every minute; it waits for the first backups and prints what a user looks
# at: the backups, the artifacts in the registry and how to restore one. Re-running it starts the
# demo afresh. `demo.sh down` deletes the demo's objects and stops the cluster (hack/local-cluster/down.sh;
# `make local-purge` also deletes the registry's content). Needs root, like the cluster.
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "$0")/../local-cluster/lib.sh"

MAKE=${MAKE:-make}
ORAS=${ORAS:-$REPO_ROOT/bin/oras}
POLICY=demo-every-minute
REPOSITORY=$LOCAL_REGISTRY/demo
LABEL=dwbackup.io/demo
DATA=$LOCAL_CLUSTER_DIR/demo
# DWO's default pod security context on Kubernetes: the mover runs as the workspace's user, and
# hostPath volumes ignore fsGroup, so the files belong to that user (docs/local-cluster.md).
WS_UID=1234
WS_GID=0
# namespace workspace storage-type (common = no attribute, as DWO's default)
WORKSPACES=(
  "demo-alice web-app per-workspace"
  "demo-alice api-server common"
  "demo-bob notebooks common"
  "demo-bob docs-site per-workspace"
  "demo-bob scratch ephemeral"
)
BACKED_UP=4 # every workspace but the ephemeral one

cluster_up() { [ -s "$KUBECONFIG_ADMIN" ] && tls_get "$APISERVER_PORT" /readyz >/dev/null 2>&1; }

# clean removes the demo's objects and files. Deleting a WorkspaceBackup other than by retention
# keeps its artifact, so the registry keeps what earlier demos pushed.
clean() {
  cluster_up || return 0
  kctl delete backuppolicy "$POLICY" --ignore-not-found >/dev/null
  kctl delete namespace -l "$LABEL=true" --ignore-not-found --wait=true --timeout=120s >/dev/null
  kctl delete pv -l "$LABEL=true" --ignore-not-found --wait=true --timeout=60s >/dev/null
  rm -rf "$DATA"
}

create_namespace() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $1
  labels:
    $LABEL: "true"
    # hostNetwork, the only pod network of the local cluster, fails the baseline level (docs/local-cluster.md).
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
EOF
}

# claim NS NAME: a hostPath PV and a PVC bound to it by name (docs/local-cluster.md); prints the host directory.
claim() {
  local ns=$1 name=$2 dir=$DATA/$1/$2
  mkdir -p "$dir"
  kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $ns-$name
  labels: {$LABEL: "true"}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $dir, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $name
  namespace: $ns
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: $ns-$name
  resources:
    requests: {storage: 1Gi}
EOF
  kctl -n "$ns" wait --for=jsonpath='{.status.phase}'=Bound "pvc/$name" --timeout=60s >/dev/null
  echo "$dir"
}

# fill DIR NAME: real files: a copy of this repository's API and docs, a small app, a symlink
# and a MiB of binary data.
fill() {
  local dir=$1 name=$2
  mkdir -p "$dir/src" "$dir/.git"
  cp -r "$REPO_ROOT/api" "$REPO_ROOT/docs" "$dir/"
  printf '# %s\n\nA demo workspace backed up by the DevWorkspace Backup Operator.\n' "$name" >"$dir/README.md"
  printf 'package main\n\nfunc main() { println("hello from %s") }\n' "$name" >"$dir/src/main.go"
  printf 'ref: refs/heads/main\n' >"$dir/.git/HEAD"
  head -c 1048576 /dev/urandom >"$dir/src/data.bin"
  ln -sfn ../README.md "$dir/src/README.md"
}

# create_workspace NS NAME TYPE: storage and files as DWO lays them out, then a stopped DevWorkspace
# with the status DWO writes.
create_workspace() {
  local ns=$1 name=$2 type=$3 id root projects attrs
  id=workspace$(openssl rand -hex 8)
  case $type in
    per-workspace)
      root=$(claim "$ns" "storage-$id")
      projects=$root/projects
      ;;
    ephemeral) root="" ;;
    *)
      root=$(claim "$ns" claim-devworkspace)
      projects=$root/$id/projects
      ;;
  esac
  if [ -n "$root" ]; then
    fill "$projects" "$name"
    chown -R -h "$WS_UID:$WS_GID" "$root"
  fi
  attrs="{}"
  [ "$type" = common ] || attrs="{controller.devfile.io/storage-type: $type}"
  kctl apply -f - >/dev/null <<EOF
apiVersion: workspace.devfile.io/v1alpha2
kind: DevWorkspace
metadata:
  name: $name
  namespace: $ns
  labels: {$LABEL: "true"}
spec:
  started: false
  template:
    attributes: $attrs
    components:
    - name: dev
      container: {image: quay.io/devfile/universal-developer-image:latest}
EOF
  mark_stopped "$ns" "$name" "$id"
}

create_workspaces() {
  local w
  create_namespace demo-alice
  create_namespace demo-bob
  for w in "${WORKSPACES[@]}"; do
    # shellcheck disable=SC2086 # three words: namespace, name, storage type
    create_workspace $w
  done
}

create_policy() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: backup.dwbackup.io/v1alpha1
kind: BackupPolicy
metadata:
  name: $POLICY
spec:
  schedule: "*/1 * * * *"
  namespaceSelector:
    matchLabels: {$LABEL: "true"}
  registry:
    repository: $REPOSITORY
    # The local registry speaks plain HTTP on loopback: an explicit opt-in.
    insecure: true
  retention:
    keepLast: 3
  maxConcurrentBackups: 2
EOF
}

succeeded() {
  kctl get workspacebackups -A -l "backup.dwbackup.io/policy=$POLICY" \
    -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Succeeded$' || true
}

first_backups_done() { [ "$(succeeded)" -ge "$BACKED_UP" ]; }

wait_first_backups() {
  log "the first slot is the next full minute ($(date -u -d "+1 minute" +%H:%M)Z)"
  if ! poll 240 first_backups_done; then
    kctl get dwbackup -A >&2 || true
    die "the first backups did not succeed in time"
  fi
}

# show prints what a user would look at.
show() {
  local ref ns name backup repo claim path
  printf '\n$ kubectl get dwbackup -A\n'
  kctl get dwbackup -A
  printf '\n$ kubectl get devworkspaces -A -l %s=true\n' "$LABEL"
  kctl get devworkspaces -A -l "$LABEL=true"
  printf '\nArtifacts in the registry (%s):\n' "$REPOSITORY"
  for repo in $("$ORAS" repo ls --plain-http "$REPOSITORY"); do
    printf '$ oras repo tags --plain-http %s/%s\n' "$REPOSITORY" "$repo"
    "$ORAS" repo tags --plain-http "$REPOSITORY/$repo" | sed 's/^/  /'
  done

  read -r ns name backup ref claim path < <(kctl get workspacebackups -A -l "backup.dwbackup.io/policy=$POLICY" \
    -o jsonpath='{range .items[?(@.status.phase=="Succeeded")]}{.metadata.namespace} {.spec.workspaceName} {.metadata.name} {.status.artifact.reference} {.status.source.claimName} {.status.source.path}{"\n"}{end}' |
    grep ' web-app ' | head -n1)
  printf '\nThe artifact is DWO-compatible: oras pull + tar -xzf gives back the files:\n'
  printf '$ oras pull --plain-http %s --output /tmp/restore-%s\n' "$ref" "$name"
  printf '$ mkdir -p /tmp/restore-%s/projects && tar -xzf /tmp/restore-%s/devworkspace-backup.tar.gz -C /tmp/restore-%s/projects\n' "$name" "$name" "$name"
  rm -rf "/tmp/restore-$name"
  "$ORAS" pull --plain-http "$ref" --output "/tmp/restore-$name" >/dev/null
  mkdir -p "/tmp/restore-$name/projects"
  tar -xzf "/tmp/restore-$name/devworkspace-backup.tar.gz" -C "/tmp/restore-$name/projects"
  diff -r --no-dereference "$DATA/$ns/$claim/$path" "/tmp/restore-$name/projects" ||
    die "the artifact differs from the workspace's files"
  printf '  (done here: %s entries, identical to the workspace'"'"'s files: diff -r)\n' \
    "$(find "/tmp/restore-$name/projects" -mindepth 1 | wc -l)"

  cat <<EOF

Restore it into the stopped workspace (a safety backup of the current files is taken first):
$ kubectl apply -f - <<YAML
apiVersion: backup.dwbackup.io/v1alpha1
kind: WorkspaceRestore
metadata: {name: $name-restore, namespace: $ns}
spec:
  workspaceName: $name
  backupName: $backup
  overwrite: true
YAML
$ kubectl -n $ns get workspacerestore $name-restore -w

Every minute the policy backs up each workspace that stopped again since its last backup
(unchanged files: a new tag on the same manifest, no data read). Look around:
  export KUBECONFIG=$KUBECONFIG_ADMIN
  kubectl describe backuppolicy $POLICY
When done: make demo-down
EOF
}

up() {
  require_root
  [ -x "$ORAS" ] || die "no oras at $ORAS: run make oras"
  cd "$REPO_ROOT"
  step "local cluster and registry (make local-up)" "$MAKE" --no-print-directory local-up
  step "operator (make deploy-local)" "$MAKE" --no-print-directory deploy-local
  step "remove an earlier demo" clean
  step "sample workspaces in demo-alice and demo-bob" create_workspaces
  step "BackupPolicy $POLICY (every minute) to $REPOSITORY" create_policy
  step "first backups" wait_first_backups
  show
  log "demo ready in $(since "$_t0")s"
}

down() {
  require_root
  step "remove the demo objects" clean
  step "stop the cluster (make local-down)" "$REPO_ROOT/hack/local-cluster/down.sh"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  *) die "usage: $0 [up|down]" ;;
esac
