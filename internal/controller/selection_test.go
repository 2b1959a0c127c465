package controller

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

var (
	stopT1 = utc("2026-11-25T18:00:00Z")
	stopT2 = utc("2026-11-26T18:00:00Z")
)

// ws is a stopped common-storage workspace in namespace "team" unless changed by opts.
func ws(name string, opts ...func(*workspace)) workspace {
	w := workspace{Name: name, Namespace: "team", ID: "workspace-" + name, Phase: phaseStopped,
		StorageType: storageCommon, StoppedAt: stopT1}
	for _, o := range opts {
		o(&w)
	}
	return w
}

func inNamespace(ns string) func(*workspace) { return func(w *workspace) { w.Namespace = ns } }
func withLabels(l map[string]string) func(*workspace) {
	return func(w *workspace) { w.Labels = l }
}
func withPhase(p string) func(*workspace)         { return func(w *workspace) { w.Phase = p } }
func withStorage(s string) func(*workspace)       { return func(w *workspace) { w.StorageType = s } }
func stoppedAt(t time.Time) func(*workspace)      { return func(w *workspace) { w.StoppedAt = t } }
func withID(id string) func(*workspace)           { return func(w *workspace) { w.ID = id } }
func startedSpec(started bool) func(*workspace)   { return func(w *workspace) { w.Started = started } }
func deleting(deleting bool) func(*workspace)     { return func(w *workspace) { w.Deleting = deleting } }
func phaseOf(p backupv1alpha1.BackupPhase) string { return string(p) }

// bk is a backup of policy "nightly" of workspace name (id workspace-<name>) in namespace "team".
func bk(name string, phase backupv1alpha1.BackupPhase, stopped time.Time, opts ...func(*backupv1alpha1.WorkspaceBackup)) backupv1alpha1.WorkspaceBackup {
	b := backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name + "-" + phaseOf(phase),
			Labels: map[string]string{
				backupv1alpha1.LabelPolicy: "nightly", backupv1alpha1.LabelWorkspace: name,
				backupv1alpha1.LabelWorkspaceID: "workspace-" + name,
			}},
		Spec:   backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: name, PolicyName: "nightly"},
		Status: backupv1alpha1.WorkspaceBackupStatus{Phase: phase},
	}
	if !stopped.IsZero() {
		b.Status.WorkspaceStoppedAt = &metav1.Time{Time: stopped}
	}
	for _, o := range opts {
		o(&b)
	}
	return b
}

func TestSelectWorkspaces(t *testing.T) {
	team := map[string]string{"team": "a"}
	namespaces := map[string]namespaceInfo{
		"team":      {Labels: team},
		"other":     {Labels: map[string]string{"team": "b"}},
		"opted-out": {Labels: map[string]string{"team": "a", backupv1alpha1.LabelExclude: "true"}},
		"leaving":   {Labels: team, Terminating: true},
	}
	tests := []struct {
		name          string
		nsSelector    *metav1.LabelSelector
		wsSelector    *metav1.LabelSelector
		workspaces    []workspace
		backups       []backupv1alpha1.WorkspaceBackup
		wantSelected  int32
		wantNoStorage int32
		wantDue       []string // namespace/name
	}{
		{name: "nil selectors select everything that is not opted out or going away",
			workspaces:   []workspace{ws("a"), ws("b", inNamespace("other")), ws("c", inNamespace("opted-out")), ws("d", inNamespace("leaving"))},
			wantSelected: 2, wantDue: []string{"other/b", "team/a"}},
		{name: "empty selectors select everything too", nsSelector: &metav1.LabelSelector{}, wsSelector: &metav1.LabelSelector{},
			workspaces: []workspace{ws("a"), ws("b", inNamespace("other"))}, wantSelected: 2, wantDue: []string{"other/b", "team/a"}},
		{name: "namespace selector",
			nsSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}},
			workspaces: []workspace{ws("a"), ws("b", inNamespace("other"))}, wantSelected: 1, wantDue: []string{"other/b"}},
		{name: "both selectors must match",
			nsSelector: &metav1.LabelSelector{MatchLabels: team},
			wsSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"gold"}}}},
			workspaces: []workspace{
				ws("gold", withLabels(map[string]string{"tier": "gold"})),
				ws("bronze", withLabels(map[string]string{"tier": "bronze"})),
				ws("gold-elsewhere", inNamespace("other"), withLabels(map[string]string{"tier": "gold"})),
			},
			wantSelected: 1, wantDue: []string{"team/gold"}},
		{name: "exclude label on the workspace",
			workspaces:   []workspace{ws("a", withLabels(map[string]string{backupv1alpha1.LabelExclude: "true"})), ws("b")},
			wantSelected: 1, wantDue: []string{"team/b"}},
		{name: "exclude label other than true does not opt out",
			workspaces:   []workspace{ws("a", withLabels(map[string]string{backupv1alpha1.LabelExclude: "false"}))},
			wantSelected: 1, wantDue: []string{"team/a"}},
		{name: "exclude label on the namespace",
			workspaces:   []workspace{ws("a", inNamespace("opted-out"))},
			wantSelected: 0},
		{name: "unknown namespace (not in the cache yet) selects nothing",
			workspaces: []workspace{ws("a", inNamespace("nowhere"))}, wantSelected: 0},
		{name: "running, starting, stopping, failed workspaces are selected but not backed up",
			workspaces: []workspace{ws("running", withPhase("Running"), startedSpec(true)), ws("starting", withPhase("Starting"), startedSpec(true)),
				ws("stopping", withPhase("Stopping")), ws("failed", withPhase("Failed")), ws("asked-to-start", startedSpec(true)), ws("stopped")},
			wantSelected: 6, wantDue: []string{"team/stopped"}},
		{name: "a workspace being deleted is not counted",
			workspaces: []workspace{ws("a", deleting(true))}, wantSelected: 0},
		{name: "ephemeral and async are counted as skipped, without a backup",
			workspaces:   []workspace{ws("eph", withStorage(storageEphemeral)), ws("async", withStorage(storageAsync)), ws("pw", withStorage(storagePerWorkspace))},
			wantSelected: 3, wantNoStorage: 2, wantDue: []string{"team/pw"}},
		{name: "an unfinished backup of this policy holds the workspace",
			workspaces: []workspace{ws("pending"), ws("running"), ws("new")},
			backups: []backupv1alpha1.WorkspaceBackup{
				bk("pending", "", time.Time{}),
				bk("running", backupv1alpha1.BackupRunning, stopT1),
			},
			wantSelected: 3, wantDue: []string{"team/new"}},
		{name: "already backed up since its last stop: nothing to do",
			workspaces:   []workspace{ws("a")},
			backups:      []backupv1alpha1.WorkspaceBackup{bk("a", backupv1alpha1.BackupSucceeded, stopT1)},
			wantSelected: 1},
		{name: "a Skipped backup covers the stop too",
			workspaces:   []workspace{ws("a")},
			backups:      []backupv1alpha1.WorkspaceBackup{bk("a", backupv1alpha1.BackupSkipped, stopT1)},
			wantSelected: 1},
		{name: "stopped again after its last backup",
			workspaces:   []workspace{ws("a", stoppedAt(stopT2))},
			backups:      []backupv1alpha1.WorkspaceBackup{bk("a", backupv1alpha1.BackupSucceeded, stopT1)},
			wantSelected: 1, wantDue: []string{"team/a"}},
		{name: "failed last time: retried",
			workspaces: []workspace{ws("a", stoppedAt(stopT2))},
			backups: []backupv1alpha1.WorkspaceBackup{
				bk("a", backupv1alpha1.BackupSucceeded, stopT1),
				bk("a", backupv1alpha1.BackupFailed, stopT2),
			},
			wantSelected: 1, wantDue: []string{"team/a"}},
		{name: "the newest success counts, whatever the list order",
			workspaces: []workspace{ws("a", stoppedAt(stopT2))},
			backups: []backupv1alpha1.WorkspaceBackup{
				bk("a", backupv1alpha1.BackupSucceeded, stopT2),
				bk("a", backupv1alpha1.BackupSucceeded, stopT1, func(b *backupv1alpha1.WorkspaceBackup) { b.Name += "-older" }),
			},
			wantSelected: 1},
		{name: "a recreated workspace (new id) is a new workspace",
			workspaces:   []workspace{ws("a", withID("workspace-recreated"))},
			backups:      []backupv1alpha1.WorkspaceBackup{bk("a", backupv1alpha1.BackupSucceeded, stopT1)},
			wantSelected: 1, wantDue: []string{"team/a"}},
		{name: "an unfinished manual backup with no id yet holds every workspace of that name",
			workspaces: []workspace{ws("a")},
			backups: []backupv1alpha1.WorkspaceBackup{bk("a", "", time.Time{}, func(b *backupv1alpha1.WorkspaceBackup) {
				delete(b.Labels, backupv1alpha1.LabelWorkspaceID)
			})},
			wantSelected: 1},
		{name: "a backup being deleted no longer counts",
			workspaces: []workspace{ws("a")},
			backups: []backupv1alpha1.WorkspaceBackup{bk("a", backupv1alpha1.BackupSucceeded, stopT1, func(b *backupv1alpha1.WorkspaceBackup) {
				b.DeletionTimestamp = &metav1.Time{Time: stopT2}
			})},
			wantSelected: 1, wantDue: []string{"team/a"}},
		{name: "a success without workspaceStoppedAt covers what stopped before it was created",
			workspaces: []workspace{ws("before"), ws("after", stoppedAt(stopT2))},
			backups: []backupv1alpha1.WorkspaceBackup{
				bk("before", backupv1alpha1.BackupSkipped, time.Time{}, func(b *backupv1alpha1.WorkspaceBackup) {
					b.CreationTimestamp = metav1.Time{Time: stopT1.Add(time.Hour)}
				}),
				bk("after", backupv1alpha1.BackupSkipped, time.Time{}, func(b *backupv1alpha1.WorkspaceBackup) {
					b.CreationTimestamp = metav1.Time{Time: stopT1.Add(time.Hour)}
				}),
			},
			wantSelected: 2, wantDue: []string{"team/after"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := parseSelectors(tt.nsSelector, tt.wsSelector)
			if err != nil {
				t.Fatal(err)
			}
			got := selectWorkspaces(sel, namespaces, tt.workspaces, historyOf(tt.backups))
			var due []string
			for _, w := range got.Due {
				due = append(due, w.Namespace+"/"+w.Name)
			}
			if got.Selected != tt.wantSelected || got.NoStorage != tt.wantNoStorage || !slices.Equal(due, tt.wantDue) {
				t.Errorf("selected %d, no storage %d, due %v; want %d, %d, %v",
					got.Selected, got.NoStorage, due, tt.wantSelected, tt.wantNoStorage, tt.wantDue)
			}
		})
	}
}

// Two policies on one workspace keep separate histories (each lists only its own backups) and
// create distinct backups for the same slot.
func TestTwoPoliciesOnOneWorkspace(t *testing.T) {
	sel, _ := parseSelectors(nil, nil)
	namespaces := map[string]namespaceInfo{"team": {}}
	w := ws("a", stoppedAt(stopT2))
	nightly := []backupv1alpha1.WorkspaceBackup{bk("a", backupv1alpha1.BackupSucceeded, stopT2)}
	var weekly []backupv1alpha1.WorkspaceBackup // never backed it up

	if got := selectWorkspaces(sel, namespaces, []workspace{w}, historyOf(nightly)); len(got.Due) != 0 {
		t.Errorf("nightly: due %v, want none (covered)", got.Due)
	}
	if got := selectWorkspaces(sel, namespaces, []workspace{w}, historyOf(weekly)); len(got.Due) != 1 {
		t.Errorf("weekly: due %v, want the workspace", got.Due)
	}
	slot := utc("2026-11-26T02:00:00Z")
	a, b := scheduledBackup("nightly", w, slot), scheduledBackup("weekly", w, slot)
	if a.Name == b.Name {
		t.Errorf("both policies would create %s", a.Name)
	}
}

func TestScheduledBackup(t *testing.T) {
	w := ws("my-ws")
	slot := time.Date(2026, 11, 26, 3, 0, 0, 0, mustZone(t, "Europe/Prague"))
	b := scheduledBackup("nightly", w, slot)
	if b.Name != "my-ws-nightly-202611260200" || b.Namespace != "team" {
		t.Errorf("name %s/%s", b.Namespace, b.Name)
	}
	wantLabels := map[string]string{
		backupv1alpha1.LabelPolicy: "nightly", backupv1alpha1.LabelWorkspace: "my-ws",
		backupv1alpha1.LabelWorkspaceID: "workspace-my-ws", backupv1alpha1.LabelTrigger: "Scheduled",
	}
	for k, v := range wantLabels {
		if b.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, b.Labels[k], v)
		}
	}
	if got := b.Annotations[backupv1alpha1.AnnotationSlot]; got != "2026-11-26T02:00:00Z" {
		t.Errorf("slot annotation %q", got)
	}
	if !slices.Equal(b.Finalizers, []string{backupv1alpha1.FinalizerArtifact}) || len(b.OwnerReferences) != 0 {
		t.Errorf("finalizers %v, owner references %v", b.Finalizers, b.OwnerReferences)
	}
	if b.Spec.WorkspaceName != "my-ws" || b.Spec.PolicyName != "nightly" || b.Status.Phase != "" {
		t.Errorf("spec %+v, phase %q", b.Spec, b.Status.Phase)
	}

	long := ws("a-workspace-with-a-really-long-name-that-goes-on-and-on-past-the-limit")
	lb := scheduledBackup("nightly", long, slot)
	if len(lb.Name) > maxNameLength || len(lb.Labels[backupv1alpha1.LabelWorkspace]) > maxNameLength {
		t.Errorf("name %q or workspace label %q longer than 63", lb.Name, lb.Labels[backupv1alpha1.LabelWorkspace])
	}
	if lb.Spec.WorkspaceName != long.Name {
		t.Errorf("spec.workspaceName %q, want the full name", lb.Spec.WorkspaceName)
	}
}

func TestSummarize(t *testing.T) {
	done := func(at time.Time) func(*backupv1alpha1.WorkspaceBackup) {
		return func(b *backupv1alpha1.WorkspaceBackup) { b.Status.CompletionTime = &metav1.Time{Time: at} }
	}
	backups := []backupv1alpha1.WorkspaceBackup{
		bk("a", backupv1alpha1.BackupRunning, stopT1),
		bk("b", backupv1alpha1.BackupRunning, stopT1),
		bk("c", "", time.Time{}),
		bk("d", backupv1alpha1.BackupSucceeded, stopT1, done(stopT2)),
		bk("e", backupv1alpha1.BackupSucceeded, stopT1, done(stopT1)),
		bk("f", backupv1alpha1.BackupFailed, stopT1, done(stopT2.Add(time.Hour))),
	}
	status := backupv1alpha1.BackupPolicyStatus{}
	summarize(&status, selection{Selected: 5, NoStorage: 2}, backups)
	if status.Workspaces != 5 || status.SkippedWorkspaces != 2 || status.ActiveBackups != 2 {
		t.Errorf("workspaces %d, skipped %d, active %d; want 5, 2, 2", status.Workspaces, status.SkippedWorkspaces, status.ActiveBackups)
	}
	if got := timeOf(status.LastSuccessfulBackupTime); !got.Equal(stopT2) {
		t.Errorf("lastSuccessfulBackupTime %s, want %s (the newest success, not the failure)", got, stopT2)
	}
	// The newest success pruned or deleted: the time never moves back.
	summarize(&status, selection{}, backups[4:5])
	if got := timeOf(status.LastSuccessfulBackupTime); !got.Equal(stopT2) || status.ActiveBackups != 0 {
		t.Errorf("lastSuccessfulBackupTime %s, active %d; want %s, 0", got, status.ActiveBackups, stopT2)
	}
}

// TestExposedSince: the stop times of the selected workspaces whose current stop is in no
// Succeeded or Skipped backup, whether or not a backup of it is in flight.
func TestExposedSince(t *testing.T) {
	namespaces := map[string]namespaceInfo{"team": {}}
	everything := selectors{Namespace: labels.Everything(), Workspace: labels.Everything()}
	workspaces := []workspace{
		ws("never-backed-up"),
		ws("covered"), ws("stopped-again", stoppedAt(stopT2)), ws("in-flight"), ws("failed"),
		ws("running", withPhase("Running")), ws("ephemeral", withStorage(storageEphemeral)), ws("skipped"),
	}
	backups := []backupv1alpha1.WorkspaceBackup{
		bk("covered", backupv1alpha1.BackupSucceeded, stopT1),
		bk("stopped-again", backupv1alpha1.BackupSucceeded, stopT1),
		bk("in-flight", backupv1alpha1.BackupRunning, stopT1),
		bk("failed", backupv1alpha1.BackupFailed, stopT1),
		bk("skipped", backupv1alpha1.BackupSkipped, stopT1),
	}
	got := selectWorkspaces(everything, namespaces, workspaces, historyOf(backups)).ExposedSince
	want := []time.Time{stopT1, stopT2, stopT1, stopT1} // never-backed-up, stopped-again, in-flight, failed
	if !slices.Equal(got, want) {
		t.Errorf("ExposedSince = %v, want %v", got, want)
	}
}
