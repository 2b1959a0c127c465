#!/usr/bin/env bash
# Releases the operator's finalizer (backup.dwbackup.io/artifact) from every WorkspaceBackup, for
# a cluster where the operator was uninstalled (with OLM: Subscription and CSV deleted) but the
# CRDs and backups were kept. Without the operator nothing releases that finalizer, so deleting a
# WorkspaceBackup, or a namespace that holds some, waits for ever. Releasing it keeps the
# artifacts: the finalizer deletes registry content only for backups that retention pruned.
# Other finalizers are left alone; each removal is a JSON patch that first tests the entry, so a
# concurrent change makes it fail instead of removing the wrong one.
# It refuses to run while an operator pod exists (the operator releases its finalizer itself).
# Usage: release-finalizers.sh [kubectl options, e.g. --kubeconfig FILE or --context NAME]
# KUBECTL picks the kubectl binary (default: kubectl on PATH). docs/olm-lifecycle.md explains it.
set -euo pipefail
FINALIZER=backup.dwbackup.io/artifact
OPERATOR_PODS=app.kubernetes.io/name=devworkspace-backup-operator,control-plane=controller-manager
kubectl=${KUBECTL:-kubectl}
k() { "$kubectl" "$@"; }

running=$(k "$@" get pods -A -l "$OPERATOR_PODS" -o name)
if [ -n "$running" ]; then
  echo "error: the operator is still running ($running); it releases its finalizers itself." >&2
  echo "Uninstall it first (delete the Subscription and the CSV), then run this again." >&2
  exit 1
fi

released=0
while IFS=$'\t' read -r ns name finalizers; do
  [ -n "$name" ] || continue
  IFS=, read -r -a list <<<"$(tr -d '[]"' <<<"$finalizers")"
  for i in "${!list[@]}"; do
    [ "${list[$i]}" = "$FINALIZER" ] || continue
    k "$@" -n "$ns" patch workspacebackup "$name" --type json -p \
      "[{\"op\":\"test\",\"path\":\"/metadata/finalizers/$i\",\"value\":\"$FINALIZER\"},{\"op\":\"remove\",\"path\":\"/metadata/finalizers/$i\"}]" >/dev/null
    echo "released $ns/$name"
    released=$((released + 1))
  done
done < <(k "$@" get workspacebackups -A -o \
  'jsonpath={range .items[*]}{.metadata.namespace}{"\t"}{.metadata.name}{"\t"}{.metadata.finalizers}{"\n"}{end}')
echo "released the finalizer of $released WorkspaceBackup(s); their artifacts stay in the registry"
