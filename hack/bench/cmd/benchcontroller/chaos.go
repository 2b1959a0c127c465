package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// The chaos run (make bench-chaos): the same slot twice over the same population, once with the
// manager left alone and once with it SIGKILLed at random moments and restarted each time, while
// the benchmark plays the Job controller for every mover Job that appears. Then it counts, from
// the API server and its audit log, what a crash must never cause: a second WorkspaceBackup for
// a workspace and slot, a second Job for a WorkspaceBackup, a backup left unfinished.
const (
	calmPolicy  = "bench-calm"
	chaosPolicy = "bench-chaos"
	// settleTimeout bounds the wait for every backup of a run to finish.
	settleTimeout = 30 * time.Minute
)

// slotRun is what one run of a slot measured.
type slotRun struct {
	policy    string
	kills     []kill
	slot      time.Time
	started   time.Time // the policy's creation: audit events from then on belong to this run
	finished  time.Time // the last backup became terminal
	succeeded int
	failed    int
	backups   backupCounts
	jobs      jobCreates
	leftovers leftovers
}

// kill is one SIGKILL: when, and how far the slot had got.
type kill struct {
	at                time.Time
	created, terminal int
}

func (r slotRun) seconds() float64 { return r.finished.Sub(r.slot).Seconds() }

// runChaos populates nothing itself: it runs the calm slot, then the chaos slot, and reports.
func runChaos(ctx context.Context, cp *controlPlane, pop population, c config, work string) error {
	if err := setupOperatorNamespace(ctx, cp); err != nil {
		return err
	}
	calm, err := runSlot(ctx, cp, pop, c, work, calmPolicy, 0)
	if err != nil {
		return fmt.Errorf("uninterrupted slot: %w", err)
	}
	chaos, err := runSlot(ctx, cp, pop, c, work, chaosPolicy, calm.seconds())
	if err != nil {
		return fmt.Errorf("slot with kills: %w", err)
	}
	for _, r := range []*slotRun{&calm, &chaos} {
		if err := r.count(ctx, cp, pop); err != nil {
			return err
		}
	}
	printChaos(os.Stdout, c, pop, calm, chaos)
	if bad := chaosFailures(calm, chaos, c.chaos); len(bad) > 0 {
		for _, b := range bad {
			_, _ = fmt.Fprintln(os.Stdout, "FAILED:", b)
		}
		return fmt.Errorf("%d check(s) failed", len(bad))
	}
	return nil
}

// runSlot starts the manager, creates the policy and plays the Job controller until every backup
// of the slot is terminal. With calmSeconds > 0 it SIGKILLs the manager c.chaos times, each after
// a random delay of up to twice calmSeconds/c.chaos, restarting it at once; the kills stop when
// every backup is terminal.
func runSlot(ctx context.Context, cp *controlPlane, pop population, c config, work, policy string,
	calmSeconds float64) (slotRun, error) {
	run := slotRun{policy: policy}
	proc, err := startManager(cp, c, work)
	if err != nil {
		return run, err
	}
	defer func() { proc.stop() }()
	if err := waitForCaches(ctx, cp.admin, len(pop.namespaces)*10); err != nil {
		return run, fmt.Errorf("waiting for the manager's caches: %w", err)
	}
	tr, err := watchBackups(ctx, cp.admin, policy)
	if err != nil {
		return run, err
	}
	defer tr.stop()
	run.started = time.Now()
	if err := createPolicy(ctx, cp, policy, false, int32(c.chaosConcurrency)); err != nil {
		return run, err
	}
	want := len(pop.stopped)
	stopJobs := playJobController(ctx, cp.admin)
	defer stopJobs()

	if calmSeconds > 0 {
		maxDelay := time.Duration(2 * calmSeconds / float64(c.chaos) * float64(time.Second))
		if err := waitForSlot(ctx, tr); err != nil {
			return run, err
		}
		for len(run.kills) < c.chaos {
			delay := time.Second + rand.N(max(maxDelay, 2*time.Second)) //nolint:gosec // a benchmark's random moments
			if err := sleep(ctx, delay); err != nil {
				return run, err
			}
			s := tr.snapshot()
			if s.created >= want && s.terminal >= want {
				logf("every backup finished after %d kills", len(run.kills))
				break
			}
			k := kill{at: time.Now(), created: s.created, terminal: s.terminal}
			proc.kill()
			if proc, err = startManager(cp, c, work); err != nil {
				return run, err
			}
			run.kills = append(run.kills, k)
			logf("kill %d: SIGKILL with %d/%d backups created, %d terminal; restarted",
				len(run.kills), s.created, want, s.terminal)
		}
	}
	err = poll(ctx, settleTimeout, func() (bool, error) {
		s := tr.snapshot()
		return s.created >= want && s.terminal >= want, s.err
	})
	s := tr.snapshot()
	run.slot, run.finished = s.slot, s.lastTerminal
	if err != nil {
		logf("%s: %d of %d backups terminal after %s: %v", policy, s.terminal, want, settleTimeout, err)
		run.finished = time.Now()
	}
	logf("%s: %d backups terminal %.1f s after the slot", policy, s.terminal, run.seconds())
	// Suspend the policy, so its later slots do not run beside the next run.
	p := &backupv1alpha1.BackupPolicy{}
	if err := cp.admin.Get(ctx, client.ObjectKey{Name: policy}, p); err != nil {
		return run, err
	}
	p.Spec.Suspend = true
	return run, cp.admin.Update(ctx, p)
}

// waitForSlot waits until the policy's first WorkspaceBackup exists: the kills are in the slot.
func waitForSlot(ctx context.Context, tr *tracker) error {
	return poll(ctx, 2*time.Minute, func() (bool, error) {
		s := tr.snapshot()
		return s.created > 0, s.err
	})
}

// playJobController completes every mover Job that appears, until the returned func is called.
func playJobController(ctx context.Context, c client.Client) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		handled := map[types.UID]bool{}
		for ctx.Err() == nil {
			if err := finishNewJobs(ctx, c, handled, int(^uint(0)>>1)); err != nil && ctx.Err() == nil {
				logf("playing the Job controller: %v", err)
			}
			_ = sleep(ctx, 200*time.Millisecond)
		}
	})
	return func() { cancel(); wg.Wait() }
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// kill ends the manager with SIGKILL: no shutdown, no lease release, writes cut anywhere.
func (p *managerProcess) kill() {
	p.sampler.finish()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	if p.log != nil {
		_ = p.log.Close()
	}
}

// backupCounts are the policy's WorkspaceBackups grouped by (workspace, slot).
type backupCounts struct {
	total      int
	duplicates int // (workspace, slot) pairs with more than one WorkspaceBackup
	missed     int // stopped workspaces with no WorkspaceBackup of the policy
	nonFinal   int
}

// jobCreates are the manager's Job creations from the audit log, by Job name (one per
// WorkspaceBackup: Job names are derived from it).
type jobCreates struct {
	created       int // 201
	alreadyExists int // 409: the Job was there, adopted
	maxPerBackup  int // the most Jobs created for one WorkspaceBackup
	duplicated    int // WorkspaceBackups with more than one Job created
}

// leftovers are the operator's children still present after the slot settled.
type leftovers struct {
	secrets int // credential copies
}

// count reads the policy's WorkspaceBackups, the audit log and what is left over.
func (r *slotRun) count(ctx context.Context, cp *controlPlane, pop population) error {
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := cp.admin.List(ctx, list, client.MatchingLabels{backupv1alpha1.LabelPolicy: r.policy}); err != nil {
		return err
	}
	perSlot, perWorkspace := map[string]int{}, map[string]bool{}
	for _, b := range list.Items {
		ws := b.Namespace + "/" + b.Spec.WorkspaceName
		perSlot[ws+"@"+b.Annotations[backupv1alpha1.AnnotationSlot]]++
		perWorkspace[ws] = true
		switch b.Status.Phase {
		case backupv1alpha1.BackupSucceeded:
			r.succeeded++
		case backupv1alpha1.BackupFailed:
			r.failed++
		case backupv1alpha1.BackupSkipped:
		default:
			r.backups.nonFinal++
		}
	}
	r.backups.total = len(list.Items)
	for _, n := range perSlot {
		if n > 1 {
			r.backups.duplicates++
		}
	}
	for _, ws := range pop.stopped {
		if !perWorkspace[ws.Namespace+"/"+ws.Name] {
			r.backups.missed++
		}
	}
	names := map[string]bool{}
	for _, b := range list.Items {
		names[b.Namespace+"/"+b.Status.JobName] = true
	}
	var err error
	if r.jobs, err = countJobCreates(cp.auditPath, managerUser, names); err != nil {
		return err
	}
	secrets := &corev1.SecretList{}
	ours := client.MatchingLabels{backupv1alpha1.LabelManagedBy: backupv1alpha1.ManagedByValue}
	if err := cp.admin.List(ctx, secrets, ours); err != nil {
		return err
	}
	r.leftovers.secrets = len(secrets.Items)
	return nil
}

// countJobCreates counts the manager's Job creations in the audit log for the given Jobs
// (namespace/name).
func countJobCreates(path, user string, jobs map[string]bool) (jobCreates, error) {
	var jc jobCreates
	f, err := os.Open(path)
	if err != nil {
		return jc, err
	}
	defer func() { _ = f.Close() }()
	perJob := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return jc, fmt.Errorf("%s: %w", path, err)
		}
		ref := ev.ObjectRef
		if ev.User.Username != user || ev.Stage != "ResponseComplete" || ev.Verb != "create" || ref == nil ||
			ref.Resource != "jobs" || ref.Subresource != "" || ev.ResponseStatus == nil || !jobs[ref.Namespace+"/"+ref.Name] {
			continue
		}
		switch ev.ResponseStatus.Code {
		case 201:
			jc.created++
			perJob[ref.Namespace+"/"+ref.Name]++
		case 409:
			jc.alreadyExists++
		}
	}
	for _, n := range perJob {
		jc.maxPerBackup = max(jc.maxPerBackup, n)
		if n > 1 {
			jc.duplicated++
		}
	}
	return jc, sc.Err()
}

func printChaos(w io.Writer, c config, pop population, calm, chaos slotRun) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	row := func(what string, a, b any) { p("| %-52s | %13v | %13v |\n", what, a, b) }
	outcome := func(r slotRun) string { return fmt.Sprintf("%d / %d", r.succeeded, r.failed) }
	p("\nManager killed mid-slot: %d stopped workspaces (of %d), maxConcurrentBackups %d, QPS %g\n\n",
		len(pop.stopped), len(pop.namespaces)*10, c.chaosConcurrency, c.qps)
	p("| %-52s | %13s | %13s |\n", "", "uninterrupted", "SIGKILLed")
	p("|%s|%s|%s|\n", dashes(54), dashes(15), dashes(15))
	row("manager SIGKILLs during the slot", len(calm.kills), len(chaos.kills))
	row("WorkspaceBackups of the policy", calm.backups.total, chaos.backups.total)
	row("(workspace, slot) with more than 1 WorkspaceBackup", calm.backups.duplicates, chaos.backups.duplicates)
	row("stopped workspaces with no WorkspaceBackup", calm.backups.missed, chaos.backups.missed)
	row("Jobs created (audit log, 201)", calm.jobs.created, chaos.jobs.created)
	row("Job creates answered AlreadyExists (adopted)", calm.jobs.alreadyExists, chaos.jobs.alreadyExists)
	row("most Jobs created for one WorkspaceBackup", calm.jobs.maxPerBackup, chaos.jobs.maxPerBackup)
	row("WorkspaceBackups with more than 1 Job created", calm.jobs.duplicated, chaos.jobs.duplicated)
	row("Succeeded / Failed", outcome(calm), outcome(chaos))
	row("non-terminal after settling", calm.backups.nonFinal, chaos.backups.nonFinal)
	row("credential copies left", calm.leftovers.secrets, chaos.leftovers.secrets)
	row("slot to last backup terminal (s)", fmt.Sprintf("%.1f", calm.seconds()), fmt.Sprintf("%.1f", chaos.seconds()))
	row("time vs uninterrupted", "1.00x", fmt.Sprintf("%.2fx", chaos.seconds()/calm.seconds()))
	p("\nKills (seconds after the slot: backups created / terminal at that moment):")
	for _, k := range chaos.kills {
		p(" %.1f s: %d/%d;", k.at.Sub(chaos.slot).Seconds(), k.created, k.terminal)
	}
	p("\n")
}

// chaosFailures are the checks a crash must pass.
func chaosFailures(calm, chaos slotRun, wantKills int) []string {
	var bad []string
	for _, r := range []slotRun{calm, chaos} {
		if r.backups.duplicates > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d (workspace, slot) pairs with duplicate WorkspaceBackups",
				r.policy, r.backups.duplicates))
		}
		if r.backups.missed > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d stopped workspaces without a backup", r.policy, r.backups.missed))
		}
		if r.jobs.duplicated > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d WorkspaceBackups with more than one Job created", r.policy, r.jobs.duplicated))
		}
		if r.backups.nonFinal > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d backups not terminal after settling", r.policy, r.backups.nonFinal))
		}
		if r.leftovers.secrets > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d credential copies left", r.policy, r.leftovers.secrets))
		}
	}
	if len(chaos.kills) < wantKills {
		bad = append(bad, fmt.Sprintf("only %d of %d kills happened during the slot", len(chaos.kills), wantKills))
	}
	return bad
}
