package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/bars"
)

// Bars of docs/benchmarks.md, "Control plane".
const (
	maxRatio         = 1.5
	maxBackupWrites  = 3
	maxManagerRSSMiB = 150
)

// results is everything one run measured.
type results struct {
	cfg      config
	shape    shape
	baseline baselineResult
	manager  managerResult
	writes   writeCounts
}

func (r results) slotSeconds() float64  { return r.manager.last.Sub(r.manager.slot).Seconds() }
func (r results) firstSeconds() float64 { return r.manager.last.Sub(r.manager.first).Seconds() }

func (r results) print(w io.Writer) {
	sh := r.shape
	load, _ := os.ReadFile("/proc/loadavg")
	loadFields := strings.Fields(string(load))
	_, _ = fmt.Fprintf(w, "control plane: scale %g, %d namespaces, %d DevWorkspaces, "+
		"%d stopped (per-workspace PVC, Bound); client QPS %g, burst %d; maxConcurrentBackups %d; %d CPUs; load %s; %s\n\n",
		r.cfg.scale, sh.namespaces, sh.workspaces(), sh.stopped(), r.cfg.qps, r.cfg.burst, maxConcurrentBackups,
		runtime.NumCPU(), strings.Join(loadFields[:min(3, len(loadFields))], " "), time.Now().UTC().Format(time.RFC3339))
	r.printTimes(w)
	r.printWrites(w)
	r.printPerBackup(w)
	m := r.manager.mem
	_, _ = fmt.Fprintf(w, "manager: peak RSS (VmHWM) %.1f MiB; largest sampled VmRSS %.1f MiB "+
		"(%d samples, every 250 ms); VmRSS at the end %.1f MiB; CPU %.1f s\n\n",
		kib(m.peakKiB), kib(m.sampledKiB), m.samples, kib(m.lastKiB), m.cpuSeconds)
	s := r.manager.metrics
	_, _ = fmt.Fprintf(w, "metrics (scraped every %s during the run): %d scrapes, %d failed; "+
		"slowest %.3f s, largest %d bytes; last scrape: %d dwbackup_ samples, %d of them per workspace\n\n",
		scrapeInterval, s.scrapes, s.failures, s.maxSeconds, s.maxBytes, s.series, s.workspaceSeries)
}

func (r results) printTimes(w io.Writer) {
	base := r.baseline.seconds
	n := float64(r.baseline.objects)
	rows := []struct {
		name    string
		seconds float64
		objects float64
		ratio   string
	}{
		{fmt.Sprintf("plain client, %d creates (%d workers)", r.baseline.objects, baselineWorkers), base, n, "1.00x"},
		{"manager: slot -> last WorkspaceBackup", r.slotSeconds(), float64(r.manager.created),
			fmt.Sprintf("%.2fx", r.slotSeconds()/base)},
		{"manager: first -> last WorkspaceBackup", r.firstSeconds(), float64(r.manager.created),
			fmt.Sprintf("%.2fx", r.firstSeconds()/base)},
		{fmt.Sprintf("manager: %d backups to Succeeded (drain)", r.manager.drained), r.manager.drainSeconds,
			float64(r.manager.drained), "-"},
	}
	_, _ = fmt.Fprintf(w, "| %-44s | %8s | %9s | %6s |\n", "method", "seconds", "objects/s", "ratio")
	_, _ = fmt.Fprintf(w, "|%s|%s:|%s:|%s:|\n", dashes(46), dashes(9), dashes(10), dashes(7))
	for _, row := range rows {
		_, _ = fmt.Fprintf(w, "| %-44s | %8.2f | %9.1f | %6s |\n", row.name, row.seconds, row.objects/row.seconds, row.ratio)
	}
	_, _ = fmt.Fprintln(w)
}

// printWrites lists the manager's writes by resource: during the slot, during the drain, and the
// drain's per Succeeded backup.
func (r results) printWrites(w io.Writer) {
	wc := r.writes
	names := map[string]bool{}
	for _, m := range wc.byResource {
		for k := range m {
			names[k] = true
		}
	}
	_, _ = fmt.Fprintf(w, "manager API writes (audit log; %d refused by the API server)\n", wc.failed)
	_, _ = fmt.Fprintf(w, "| %-30s | %10s | %10s | %14s | %-36s |\n", "resource", "slot", "drain", "drain/backup", "verbs")
	_, _ = fmt.Fprintf(w, "|%s|%s:|%s:|%s:|%s|\n", dashes(32), dashes(11), dashes(11), dashes(15), dashes(38))
	for _, name := range slices.Sorted(maps.Keys(names)) {
		slot, drained := wc.byResource[phaseCreation][name], wc.byResource[phaseDrain][name]
		_, _ = fmt.Fprintf(w, "| %-30s | %10d | %10d | %14s | %-36s |\n", name, slot, drained,
			perDrained(drained, r.manager.drained), verbList(wc.verbs[name]))
	}
	_, _ = fmt.Fprintln(w)
}

func perDrained(n, drained int) string {
	if drained == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(n)/float64(drained))
}

func verbList(verbs map[string]int) string {
	parts := make([]string, 0, len(verbs))
	for _, v := range slices.Sorted(maps.Keys(verbs)) {
		parts = append(parts, fmt.Sprintf("%s %d", v, verbs[v]))
	}
	return strings.Join(parts, ", ")
}

// backupGroup is the writes per WorkspaceBackup of one group of backups.
type backupGroup struct {
	name       string
	count      int
	sum, worst int
}

// groups splits the backups into those taken to Succeeded and the rest (Running or waiting).
func (r results) groups() (finished, other backupGroup) {
	done := map[string]bool{}
	for _, k := range r.manager.finished {
		done[k] = true
	}
	finished.name, other.name = "Succeeded (create, Running, final)", "not finished (Running or waiting)"
	for key, n := range r.writes.perBackup {
		g := &other
		if done[key] {
			g = &finished
		}
		g.count++
		g.sum += n
		g.worst = max(g.worst, n)
	}
	return finished, other
}

func (r results) printPerBackup(w io.Writer) {
	finished, other := r.groups()
	_, _ = fmt.Fprintln(w, "writes per WorkspaceBackup (object and status, whole run, audit log by object)")
	for _, g := range []backupGroup{finished, other} {
		avg := 0.0
		if g.count > 0 {
			avg = float64(g.sum) / float64(g.count)
		}
		_, _ = fmt.Fprintf(w, "  %-36s %5d backups: %.2f on average, at most %d\n", g.name, g.count, avg, g.worst)
	}
	_, _ = fmt.Fprintln(w)
}

// checkBars prints each bar of docs/benchmarks.md, "Control plane" and returns how many were missed.
func (r results) checkBars(w io.Writer) int {
	finished, other := r.groups()
	ratio := r.slotSeconds() / r.baseline.seconds
	worst := max(finished.worst, other.worst)
	return bars.Print(w, 50, []bars.Bar{
		{Name: fmt.Sprintf("all %d WorkspaceBackups within %.1fx the plain client", r.baseline.objects, maxRatio),
			OK:  r.manager.created == r.baseline.objects && ratio <= maxRatio,
			Got: fmt.Sprintf("%.2fx (%.2f s vs %.2f s, from the slot)", ratio, r.slotSeconds(), r.baseline.seconds)},
		{Name: fmt.Sprintf("<= %d writes per WorkspaceBackup", maxBackupWrites),
			OK:  worst <= maxBackupWrites && finished.count > 0,
			Got: fmt.Sprintf("at most %d (Succeeded: %d, others: %d)", worst, finished.worst, other.worst)},
		{Name: fmt.Sprintf("manager peak RSS < %d MiB", maxManagerRSSMiB), OK: kib(r.manager.mem.peakKiB) < maxManagerRSSMiB,
			Got: fmt.Sprintf("%.1f MiB", kib(r.manager.mem.peakKiB))},
	})
}

func kib(v int64) float64 { return float64(v) / 1024 }

func dashes(n int) string { return strings.Repeat("-", n) }
