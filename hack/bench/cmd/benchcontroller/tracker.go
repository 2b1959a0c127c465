package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// tracker follows the policy's WorkspaceBackups through one watch: when each was created (as
// seen by a watcher, which is what a user would see) and the phase each is in.
type tracker struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	state  trackerState
	phases map[string]backupv1alpha1.BackupPhase
}

// trackerState is a consistent view of the counts and times.
type trackerState struct {
	slot, first, last time.Time
	created           int
	running           int
	succeeded         []string
	// terminal counts the backups Succeeded, Failed or Skipped; lastTerminal is when the last got there.
	terminal     int
	lastTerminal time.Time
	err          error
}

// watchBackups starts the watch before the policy exists, so no creation is missed.
func watchBackups(ctx context.Context, c client.WithWatch, policy string) (*tracker, error) {
	ctx, cancel := context.WithCancel(ctx)
	ofPolicy := client.MatchingLabels{backupv1alpha1.LabelPolicy: policy}
	w, err := c.Watch(ctx, &backupv1alpha1.WorkspaceBackupList{}, ofPolicy)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch WorkspaceBackups: %w", err)
	}
	t := &tracker{cancel: cancel, phases: map[string]backupv1alpha1.BackupPhase{}}
	go t.run(ctx, w)
	return t, nil
}

func (t *tracker) run(ctx context.Context, w watch.Interface) {
	defer w.Stop()
	for ev := range w.ResultChan() {
		b, ok := ev.Object.(*backupv1alpha1.WorkspaceBackup)
		if !ok {
			t.fail(fmt.Errorf("watch event %s: %v", ev.Type, ev.Object))
			return
		}
		t.observe(ev.Type, b, time.Now())
	}
	if ctx.Err() == nil {
		t.fail(errors.New("the WorkspaceBackup watch closed early"))
	}
}

func (t *tracker) observe(typ watch.EventType, b *backupv1alpha1.WorkspaceBackup, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := b.Namespace + "/" + b.Name
	old, known := t.phases[key]
	if typ == watch.Added && !known {
		t.state.created++
		if t.state.first.IsZero() {
			t.state.first = now
			t.state.slot, _ = time.Parse(time.RFC3339, b.Annotations[backupv1alpha1.AnnotationSlot])
		}
		t.state.last = now
	}
	phase := b.Status.Phase
	if typ == watch.Deleted {
		phase = "deleted"
	}
	t.phases[key] = phase
	if old != phase {
		t.count(old, -1, key)
		t.count(phase, 1, key)
		if terminalPhase(phase) && !terminalPhase(old) {
			t.state.terminal++
			t.state.lastTerminal = now
		} else if terminalPhase(old) && !terminalPhase(phase) {
			t.state.terminal--
		}
	}
}

// count keeps the Running count and the list of Succeeded backups current.
func (t *tracker) count(phase backupv1alpha1.BackupPhase, delta int, key string) {
	switch phase {
	case backupv1alpha1.BackupRunning:
		t.state.running += delta
	case backupv1alpha1.BackupSucceeded:
		if delta > 0 {
			t.state.succeeded = append(t.state.succeeded, key)
		}
	default:
	}
}

func terminalPhase(p backupv1alpha1.BackupPhase) bool {
	return p == backupv1alpha1.BackupSucceeded || p == backupv1alpha1.BackupFailed || p == backupv1alpha1.BackupSkipped
}

func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state.err == nil {
		t.state.err = err
	}
}

func (t *tracker) snapshot() trackerState {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state
	s.succeeded = append([]string(nil), t.state.succeeded...)
	return s
}

func (t *tracker) stop() { t.cancel() }
