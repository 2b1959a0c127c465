#!/usr/bin/env bash
# Smoke test on the local cluster with the operator deployed (make deploy-local): one stopped
# DevWorkspace with per-workspace storage (status set as DWO sets it), its PVC bound to a hostPath
# PV holding real files owned by the mover's user, a BackupPolicy pointing at the local registry
# and a manual WorkspaceBackup. Passes when the backup Succeeds through a real Job and the artifact,
# fetched with oras and unpacked with tar as DWO restores it, equals the files.
# Re-runnable: it deletes what a previous run left first. SMOKE_CLEANUP=1 removes it all at the end.
# `smoke.sh --direct-job` creates the mover Job itself instead of the policy and WorkspaceBackup:
# it checks image, mover, node and registry without the controllers.
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "$0")/lib.sh"

ORAS=${ORAS:-$REPO_ROOT/bin/oras}
NS=dwbackup-smoke
WS=smoke-ws
POLICY=dwbackup-smoke
BACKUP=smoke-manual
# DWO's default pod security context on Kubernetes (docs/architecture.md, "DevWorkspaces"): the mover runs as the workspace user.
# hostPath volumes ignore fsGroup (docs/local-cluster.md), so the files must already belong to that user.
WS_UID=1234
WS_GID=0
WS_ID=workspace$(openssl rand -hex 8)
PV=dwbackup-smoke-$WS_ID
DATA=$LOCAL_CLUSTER_DIR/smoke/$WS_ID
WORK=$LOCAL_CLUSTER_DIR/smoke/check
ARTIFACT_REF=""
ARTIFACT_DIGEST=""
OPERATOR_NAMESPACE=""
OPERATOR_DEPLOYMENT=""

preflight() {
  if [ ! -s "$KUBECONFIG_ADMIN" ] || ! tls_get "$APISERVER_PORT" /readyz >/dev/null 2>&1; then
    die "the local cluster is not up: run make local-up deploy-local"
  fi
  [ -x "$ORAS" ] || die "no oras at $ORAS: run make oras"
  kctl get crd devworkspaces.workspace.devfile.io >/dev/null 2>&1 || die "no DevWorkspace CRD: run make deploy-local"
  kctl get crd workspacebackups.backup.dwbackup.io >/dev/null 2>&1 || die "no WorkspaceBackup CRD: run make deploy-local"
  [ -s "$LOCAL_CLUSTER_DIR/deploy/operator.env" ] || die "the operator was not deployed: run make deploy-local"
  # shellcheck source=/dev/null # written by deploy.sh
  source "$LOCAL_CLUSTER_DIR/deploy/operator.env"
}

# clean_previous removes the last run's namespace, PVs and policy. A WorkspaceBackup keeps its
# artifact when deleted other than by retention, so its finalizer is normally released at once;
# if the operator is not running, the finalizers are dropped here so the namespace can go.
clean_previous() {
  local pv wb
  kctl delete backuppolicy "$POLICY" --ignore-not-found --wait=false >/dev/null
  if kctl get namespace "$NS" >/dev/null 2>&1; then
    kctl delete namespace "$NS" --wait=false >/dev/null
    if ! poll 60 namespace_gone; then
      log "namespace $NS still terminating: dropping leftover finalizers"
      for wb in $(kctl -n "$NS" get workspacebackups -o name 2>/dev/null); do
        kctl -n "$NS" patch "$wb" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null || true
      done
      wait_for "namespace $NS to go" 60 namespace_gone
    fi
  fi
  for pv in $(kctl get pv -l dwbackup.io/smoke=true -o name); do
    kctl delete "$pv" --wait=true --timeout=60s >/dev/null
  done
  rm -rf "$LOCAL_CLUSTER_DIR/smoke"
}

namespace_gone() { ! kctl get namespace "$NS" >/dev/null 2>&1; }

# make_files writes a small but varied tree: nested directories, an empty file, a name with spaces,
# a symlink and a binary file.
make_files() {
  local p=$DATA/projects
  mkdir -p "$p/app/src" "$p/docs/empty-dir" "$p/.git"
  printf 'console.log("hello from the smoke test");\n' >"$p/app/src/index.js"
  printf '{"name": "smoke", "version": "1.0.0"}\n' >"$p/app/package.json"
  printf '# Smoke\n\nA workspace backed up by the smoke test.\n' >"$p/README.md"
  printf 'ref: refs/heads/main\n' >"$p/.git/HEAD"
  : >"$p/docs/empty file.txt"
  head -c 200000 /dev/urandom >"$p/docs/blob.bin"
  ln -s ../README.md "$p/app/README-link.md"
  chown -R -h "$WS_UID:$WS_GID" "$DATA"
}

apply_namespace() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $NS
  labels:
    # hostNetwork (the only pod network of this cluster) fails the baseline level (docs/local-cluster.md).
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
EOF
}

apply_storage() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $PV
  labels:
    dwbackup.io/smoke: "true"
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath:
    path: $DATA
    type: Directory
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: storage-$WS_ID
  namespace: $NS
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  # Named volume: binds at once instead of after the binder's next pass (docs/local-cluster.md).
  volumeName: $PV
  resources:
    requests: {storage: 1Gi}
EOF
  kctl -n "$NS" wait --for=jsonpath='{.status.phase}'=Bound "pvc/storage-$WS_ID" --timeout=60s >/dev/null
}

# apply_workspace creates a stopped DevWorkspace and sets its status the way DWO does.
apply_workspace() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: workspace.devfile.io/v1alpha2
kind: DevWorkspace
metadata:
  name: $WS
  namespace: $NS
spec:
  started: false
  template:
    attributes:
      controller.devfile.io/storage-type: per-workspace
    components:
    - name: dev
      container:
        image: quay.io/devfile/universal-developer-image:latest
EOF
  mark_stopped "$NS" "$WS" "$WS_ID"
}

apply_policy_and_backup() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: backup.dwbackup.io/v1alpha1
kind: BackupPolicy
metadata:
  name: $POLICY
spec:
  # Only the manual backup below should run: the schedule is suspended.
  schedule: "0 3 1 1 *"
  suspend: true
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: $NS
  registry:
    repository: $LOCAL_REGISTRY/smoke
    # The local registry speaks plain HTTP on loopback; never chosen implicitly.
    insecure: true
  job:
    activeDeadlineSeconds: 300
---
apiVersion: backup.dwbackup.io/v1alpha1
kind: WorkspaceBackup
metadata:
  name: $BACKUP
  namespace: $NS
spec:
  workspaceName: $WS
  policyName: $POLICY
EOF
}

backup_phase() { kctl -n "$NS" get workspacebackup "$BACKUP" -o 'jsonpath={.status.phase}' 2>/dev/null; }
backup_finished() { case $(backup_phase) in Succeeded | Failed | Skipped) return 0 ;; *) return 1 ;; esac; }

show_failure() {
  kctl -n "$NS" get workspacebackup "$BACKUP" -o yaml >&2 || true
  kctl -n "$NS" get jobs,pods -o wide >&2 || true
  local job
  job=$(kctl -n "$NS" get workspacebackup "$BACKUP" -o 'jsonpath={.status.jobName}' 2>/dev/null || true)
  [ -z "$job" ] || kctl -n "$NS" logs "job/$job" --tail=30 >&2 || true
  # Every manager replica's (config/local runs two; the leader's is the one that says something).
  kctl -n "$OPERATOR_NAMESPACE" logs -l control-plane=controller-manager --prefix --tail=15 2>&1 |
    cut -c1-400 >&2 || true
}

wait_backup() {
  if ! poll "${SMOKE_TIMEOUT:-240}" backup_finished; then
    show_failure
    die "WorkspaceBackup $NS/$BACKUP did not finish (phase: '$(backup_phase)')"
  fi
  if [ "$(backup_phase)" != Succeeded ]; then
    show_failure
    die "WorkspaceBackup $NS/$BACKUP ended $(backup_phase)"
  fi
  ARTIFACT_REF=$(kctl -n "$NS" get workspacebackup "$BACKUP" -o 'jsonpath={.status.artifact.reference}')
  ARTIFACT_DIGEST=$(kctl -n "$NS" get workspacebackup "$BACKUP" -o 'jsonpath={.status.artifact.digest}')
}

# check_artifact pulls the artifact as DWO's restore does (oras pull, then tar -xzf) and compares
# it with the files; it also checks the DWO artifact type and that latest points at it.
check_artifact() {
  local ref=$ARTIFACT_REF digest=$ARTIFACT_DIGEST repo latest
  [ -n "$ref" ] || die "the WorkspaceBackup has no status.artifact.reference"
  log "artifact $ref ($digest)"
  repo=${ref%@*}
  repo=${repo%:*}
  [ "$repo" = "$LOCAL_REGISTRY/smoke/$NS/$WS" ] || die "artifact repository $repo, want $LOCAL_REGISTRY/smoke/$NS/$WS"
  rm -rf "$WORK" && mkdir -p "$WORK/pulled" "$WORK/restored"
  "$ORAS" pull --plain-http "$ref" --output "$WORK/pulled" >/dev/null
  [ -s "$WORK/pulled/devworkspace-backup.tar.gz" ] || die "the artifact has no devworkspace-backup.tar.gz"
  tar -xzf "$WORK/pulled/devworkspace-backup.tar.gz" -C "$WORK/restored"
  diff -r --no-dereference "$DATA/projects" "$WORK/restored" || die "the restored files differ from the workspace's"
  "$ORAS" manifest fetch --plain-http "$ref" | grep -q '"artifactType": *"application/vnd.devworkspace.backup.artifact.v1+json"' ||
    die "the manifest lacks DWO's artifactType"
  if [ -n "$digest" ]; then
    latest=$("$ORAS" resolve --plain-http "$repo:latest")
    [ "$latest" = "$digest" ] || die "$repo:latest is $latest, want $digest"
  fi
}

# run_direct_job runs the mover the way the controller does (docs/mover-contract.md) (claim root mounted
# read-only, --source <mount>/projects, the workspace's user, host network on this cluster), without
# the controller: it checks the image, the mover, the node and the registry while the controllers
# are not there yet. Used with --direct-job.
run_direct_job() {
  local image job=smoke-direct-mover
  image=$(kctl -n "$OPERATOR_NAMESPACE" get deployment "$OPERATOR_DEPLOYMENT" \
    -o 'jsonpath={.spec.template.spec.containers[0].image}')
  kctl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata:
  name: $job
  namespace: $NS
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 300
  template:
    spec:
      restartPolicy: Never
      hostNetwork: true
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: $WS_UID
        runAsGroup: $WS_GID
        fsGroup: $WS_UID
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: mover
        image: $image
        command: [/mover, backup, --source, /workspace/projects, --repository, $LOCAL_REGISTRY/smoke/$NS/$WS,
                  --tag, direct, --workspace, $WS, --namespace, $NS, --workspace-id, $WS_ID, --insecure]
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: storage, mountPath: /workspace, readOnly: true}
      volumes:
      - name: storage
        persistentVolumeClaim: {claimName: storage-$WS_ID, readOnly: true}
EOF
  if ! kctl -n "$NS" wait --for=condition=Complete "job/$job" --timeout=180s >/dev/null; then
    kctl -n "$NS" describe job "$job" >&2 || true
    kctl -n "$NS" logs "job/$job" --tail=30 >&2 || true
    die "the direct mover Job did not complete"
  fi
  log "mover result: $(kctl -n "$NS" get pods -l "job-name=$job" -o 'jsonpath={.items[0].status.containerStatuses[0].state.terminated.message}')"
  ARTIFACT_REF=$LOCAL_REGISTRY/smoke/$NS/$WS:direct
  ARTIFACT_DIGEST=$("$ORAS" resolve --plain-http "$ARTIFACT_REF")
}

cleanup() {
  [ "${SMOKE_CLEANUP:-}" = 1 ] || return 0
  clean_previous
}

main() {
  preflight
  step "clean the previous run" clean_previous
  step "workspace files under $DATA (uid $WS_UID)" make_files
  step "namespace $NS" apply_namespace
  step "hostPath PV and PVC storage-$WS_ID" apply_storage
  step "stopped DevWorkspace $WS ($WS_ID)" apply_workspace
  if [ "${1:-}" = --direct-job ]; then
    step "mover Job without the controller" run_direct_job
  else
    step "BackupPolicy $POLICY and WorkspaceBackup $BACKUP" apply_policy_and_backup
    step "backup Succeeded" wait_backup
  fi
  step "artifact equals the files (oras pull + tar -xzf)" check_artifact
  cleanup
  log "smoke passed in $(since "$_t0")s"
}

main "$@"
