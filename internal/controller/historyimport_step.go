package controller

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// importRetry is how long a history import that failed for a passing reason waits before it runs
// again (the policy is reconciled on every change of its backups: the wait spares the registry).
const importRetry = time.Minute

// importBudget bounds one run: the import runs in the policy reconciler, whose schedule must not
// wait on a slow registry. A run cut short is retried, and what it recorded is not read again.
const importBudget = 5 * time.Minute

// importMemory is what this process knows of each policy's imports that its cache may not show
// yet: the last result it recorded (the next reconcile may read the policy from before that
// status patch, and must not import again), and when a failed import may run again.
type importMemory struct {
	mu   sync.Mutex
	last map[types.UID]*backupv1alpha1.HistoryImportStatus
	next map[types.UID]time.Time
}

// latest is the newer of the cached status and what this process recorded.
func (m *importMemory) latest(policy *backupv1alpha1.BackupPolicy) *backupv1alpha1.HistoryImportStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := m.last[policy.UID]; h != nil {
		return h
	}
	return policy.Status.HistoryImport
}

func (m *importMemory) recorded(uid types.UID, h *backupv1alpha1.HistoryImportStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[types.UID]*backupv1alpha1.HistoryImportStatus{}
	}
	m.last[uid] = h.DeepCopy()
}

func (m *importMemory) allowed(uid types.UID, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !now.Before(m.next[uid])
}

func (m *importMemory) failed(uid types.UID, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.next == nil {
		m.next = map[types.UID]time.Time{}
	}
	m.next[uid] = now.Add(importRetry)
}

// importDue reports whether the policy's history import should run: it is asked for and its last
// run h was not for this spec generation and import-history annotation, or a namespace it
// skipped exists now.
func importDue(policy *backupv1alpha1.BackupPolicy, h *backupv1alpha1.HistoryImportStatus, namespaces map[string]namespaceInfo) bool {
	if !policy.Spec.ImportHistory {
		return false
	}
	if h == nil || h.ObservedGeneration != policy.Generation || h.Request != policy.Annotations[backupv1alpha1.AnnotationImportHistory] {
		return true
	}
	return slices.ContainsFunc(h.MissingNamespaces, func(ns string) bool {
		info, ok := namespaces[ns]
		return ok && !info.Terminating
	})
}

// historyImport is one run of a policy's import.
type historyImport struct {
	r         *BackupPolicyReconciler
	policy    *backupv1alpha1.BackupPolicy
	reg       *registry.Client
	selectors selectors
	// namespaces are the cluster's, from the cache.
	namespaces map[string]namespaceInfo
	// known are the references the policy's WorkspaceBackups record: never read again.
	known   map[string]bool
	result  backupv1alpha1.HistoryImportStatus
	missing map[string]bool
}

// importHistory runs the import when it is due and records its outcome in the policy's status
// (status.historyImport and the HistoryImported condition). It never fails the policy: a
// registry that does not list is reported, a passing failure is retried after importRetry.
func (r *BackupPolicyReconciler) importHistory(ctx context.Context, policy *backupv1alpha1.BackupPolicy,
	valid validPolicy, state observed) time.Duration {
	if !policy.Spec.ImportHistory {
		meta.RemoveStatusCondition(&policy.Status.Conditions, backupv1alpha1.ConditionHistoryImported)
		return 0
	}
	now := r.Clock.Now()
	if !importDue(policy, r.imports.latest(policy), state.namespaces) || !r.imports.allowed(policy.UID, now) {
		return 0
	}
	run := &historyImport{r: r, policy: policy, selectors: valid.selectors, namespaces: state.namespaces,
		known: map[string]bool{}, missing: map[string]bool{}}
	for i := range state.backups {
		if a := state.backups[i].Status.Artifact; a != nil && a.Reference != "" {
			run.known[a.Reference] = true
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, importBudget)
	defer cancel()
	err := run.run(runCtx)
	reason := registry.ReasonOf(err)
	switch {
	case err == nil:
		run.finish(now)
		r.imports.recorded(policy.UID, policy.Status.HistoryImport)
	case reason == registry.ReasonUnauthorized || reason == registry.ReasonNotFound || reason == registry.ReasonUnsupported:
		// Listing refused: running it again changes nothing until a person changes something.
		run.record(backupv1alpha1.ReasonRegistryListingUnsupported, fmt.Sprintf(
			"spec.importHistory: the registry of %s does not list its repositories or tags for these credentials (%v). "+
				"The import needs GET /v2/_catalog and GET /v2/<name>/tags/list (token scope registry:catalog:*); "+
				"without them restore single artifacts with WorkspaceRestore spec.artifactReference",
			policy.Spec.Registry.Repository, err))
		policy.Status.HistoryImport = run.stamped()
		r.imports.recorded(policy.UID, policy.Status.HistoryImport)
	default:
		r.imports.failed(policy.UID, now)
		run.record(backupv1alpha1.ReasonImportFailed, fmt.Sprintf(
			"spec.importHistory: the import stopped after %d backups and is retried in %s: %v",
			run.result.Imported, importRetry, err))
		return importRetry
	}
	return 0
}

// run lists the repositories below the policy's repository and imports each workspace's.
func (run *historyImport) run(ctx context.Context) error {
	reg, err := newPolicyRegistryClient(ctx, run.r.APIReader, run.r.OperatorNamespace, run.policy)
	if err != nil {
		return err
	}
	run.reg = reg
	host, prefix := splitRepository(run.policy.Spec.Registry.Repository)
	var repos [][2]string
	err = reg.Catalog(ctx, host, prefix, func(names []string) error {
		for _, n := range names {
			if ns, ws, ok := workspaceOfRepository(prefix, n); ok {
				repos = append(repos, [2]string{ns, ws})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(repos, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, repo := range repos {
		if err := run.importRepository(ctx, repo[0], repo[1]); err != nil {
			return err
		}
	}
	return nil
}

// importRepository imports the policy's tags of one workspace repository, newest first: a
// backup that retention prunes at once never takes with it (delete by digest) a newer tag of
// the same manifest that is not imported yet.
func (run *historyImport) importRepository(ctx context.Context, namespace, workspace string) error {
	info, exists := run.namespaces[namespace]
	switch {
	case !exists || info.Terminating:
		run.result.SkippedRepositories++
		run.missing[namespace] = true
		return nil
	case !run.selectors.Namespace.Matches(labels.Set(info.Labels)):
		run.result.SkippedRepositories++
		return nil
	}
	repository := artifactRepository(run.policy.Spec.Registry.Repository, namespace, workspace)
	name, err := run.reg.ParseRepository(repository)
	if err != nil {
		return err
	}
	repo, err := run.reg.Open(ctx, name, registry.Pull)
	if err != nil {
		return err
	}
	type candidate struct {
		tag  string
		at   time.Time
		uid6 string
	}
	var tags []candidate
	if err := repo.ListTags(ctx, func(page []string) error {
		for _, tag := range page {
			if at, uid6, ok := ownTag(run.policy.Name, tag); ok {
				tags = append(tags, candidate{tag: tag, at: at, uid6: uid6})
			}
		}
		return nil
	}); registry.ReasonOf(err) == registry.ReasonNotFound {
		return nil // the repository was deleted since the catalog listed it
	} else if err != nil {
		return err
	}
	slices.SortFunc(tags, func(a, b candidate) int { return cmp.Or(b.at.Compare(a.at), cmp.Compare(b.tag, a.tag)) })
	for _, c := range tags {
		reference := repository + ":" + c.tag
		if run.known[reference] {
			run.result.AlreadyPresent++
			continue
		}
		m, err := repo.GetManifest(ctx, c.tag)
		if registry.ReasonOf(err) == registry.ReasonNotFound {
			continue // deleted since it was listed
		}
		if err != nil {
			return err
		}
		artifact, err := readImportedArtifact(m, reference, namespace, workspace, c.at)
		if err != nil {
			run.result.Rejected++
			logf.FromContext(ctx).Info("history import: not this policy's artifact, left alone", "reference", reference, "cause", err.Error())
			continue
		}
		b := importedBackup(namespace, workspace, run.policy.Name, c.at, c.uid6, artifact.WorkspaceID)
		created, err := run.r.createImported(ctx, b, artifact)
		if err != nil {
			return err
		}
		if created {
			run.result.Imported++
		} else {
			run.result.AlreadyPresent++
		}
	}
	return nil
}

// createImported creates an imported backup, then writes its status (a status cannot be set on
// create). AlreadyExists is an earlier run's or the live history's backup: one the import created
// and could not complete (the process stopped in between) is completed, any other is left alone.
func (r *BackupPolicyReconciler) createImported(ctx context.Context, b *backupv1alpha1.WorkspaceBackup, a importedArtifact) (bool, error) {
	err := r.Create(ctx, b)
	if apierrors.IsAlreadyExists(err) {
		existing := &backupv1alpha1.WorkspaceBackup{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(b), existing); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if !isImportPending(existing) || existing.Spec != b.Spec {
			return false, nil
		}
		// Created by an earlier run, or by a person under the same name: labelled like every backup.
		if labelBackup(existing, backupv1alpha1.TriggerImported, a.WorkspaceID) {
			if err := r.Update(ctx, existing); err != nil {
				return false, fmt.Errorf("labelling imported WorkspaceBackup %s/%s: %w", b.Namespace, b.Name, err)
			}
		}
		b, err = existing, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating imported WorkspaceBackup %s/%s: %w", b.Namespace, b.Name, err)
	}
	before := b.DeepCopy()
	b.Status = importedStatus(a, b.Generation)
	if err := r.Status().Patch(ctx, b, client.MergeFrom(before)); err != nil {
		return false, fmt.Errorf("recording imported WorkspaceBackup %s/%s: %w", b.Namespace, b.Name, err)
	}
	return true, nil
}

// finish records a run that went to its end.
func (run *historyImport) finish(now time.Time) {
	h := run.stamped()
	h.CompletionTime = &metav1.Time{Time: now}
	run.policy.Status.HistoryImport = h
	msg := fmt.Sprintf("imported %d backups from %s (%d already present, %d tags rejected)",
		h.Imported, run.policy.Spec.Registry.Repository, h.AlreadyPresent, h.Rejected)
	if len(h.MissingNamespaces) == 0 {
		run.record(backupv1alpha1.ReasonImported, msg)
		return
	}
	run.record(backupv1alpha1.ReasonNamespacesMissing, fmt.Sprintf(
		"%s; the artifacts of namespaces that do not exist were not imported: %s. The import runs again when one is created",
		msg, strings.Join(h.MissingNamespaces, ", ")))
}

// stamped is the run's result marked with the generation and request it ran for.
func (run *historyImport) stamped() *backupv1alpha1.HistoryImportStatus {
	h := run.result.DeepCopy()
	h.ObservedGeneration = run.policy.Generation
	h.Request = run.policy.Annotations[backupv1alpha1.AnnotationImportHistory]
	for _, ns := range slices.Sorted(maps.Keys(run.missing)) {
		if len(h.MissingNamespaces) < maxMissingNamespaces {
			h.MissingNamespaces = append(h.MissingNamespaces, ns)
		}
	}
	if prev := run.policy.Status.HistoryImport; prev != nil && h.CompletionTime == nil {
		h.CompletionTime = prev.CompletionTime
	}
	return h
}

// record sets the HistoryImported condition: True once the import ran to its end with nothing
// left out.
func (run *historyImport) record(reason, message string) {
	status := metav1.ConditionFalse
	if reason == backupv1alpha1.ReasonImported {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&run.policy.Status.Conditions, metav1.Condition{Type: backupv1alpha1.ConditionHistoryImported,
		Status: status, Reason: reason, Message: message, ObservedGeneration: run.policy.Generation})
}
