package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/bars"
	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/gentree"
)

const mib = 1 << 20

func printTable(w io.Writer, scale float64, st gentree.Stats, rows []row) {
	host, _ := os.Hostname()
	_, _ = fmt.Fprintf(w, "tree: scale %g, %d files, %.0f MB (%.2f GiB); %d CPUs; %s; %s\n\n",
		scale, st.Files, float64(st.Bytes)/1e6, float64(st.Bytes)/(1<<30), runtime.NumCPU(), host,
		time.Now().UTC().Format(time.RFC3339))
	dwo := find(rows, phaseDWO)
	_, _ = fmt.Fprintf(w, "| %-34s | %8s | %8s | %8s | %9s | %12s | %10s | %9s |\n",
		"method", "seconds", "MB/s", "CPU s", "peak RSS", "uploaded", "vs DWO", "% of DWO")
	_, _ = fmt.Fprintf(w, "|%s|%s:|%s:|%s:|%s:|%s:|%s:|%s:|\n", dashes(36), dashes(9), dashes(9), dashes(9),
		dashes(10), dashes(13), dashes(11), dashes(10))
	for _, r := range rows {
		if r.kind.restore() {
			continue
		}
		up := "-"
		switch {
		case r.uploaded >= 1e6:
			up = fmt.Sprintf("%.1f MB", float64(r.uploaded)/1e6)
		case r.uploaded >= 0:
			up = fmt.Sprintf("%.1f kB", float64(r.uploaded)/1e3)
		}
		_, _ = fmt.Fprintf(w, "| %-34s | %8.2f | %8.1f | %8.2f | %5.1f MiB | %12s | %9.1fx | %8.2f%% |\n",
			r.name, r.seconds, float64(st.Bytes)/1e6/r.seconds, r.cpu, float64(r.rssKiB)/1024, up,
			dwo.seconds/r.seconds, 100*r.seconds/dwo.seconds)
	}
	_, _ = fmt.Fprintln(w)
	printRestoreTable(w, st, rows)
}

// printRestoreTable prints the restore rows: "vs DWO" against DWO's restore,
// syscalls per file of the tree from the untimed run under perf.
func printRestoreTable(w io.Writer, st gentree.Stats, rows []row) {
	dwo := find(rows, phaseDWORestore)
	_, _ = fmt.Fprintf(w, "| %-34s | %8s | %8s | %8s | %8s | %9s | %9s | %10s |\n",
		"restore", "seconds", "MB/s", "CPU s", "sys s", "calls/file", "peak RSS", "vs DWO")
	_, _ = fmt.Fprintf(w, "|%s|%s:|%s:|%s:|%s:|%s:|%s:|%s:|\n", dashes(36), dashes(9), dashes(9), dashes(9),
		dashes(9), dashes(11), dashes(10), dashes(11))
	for _, r := range rows {
		if !r.kind.restore() {
			continue
		}
		calls := "-"
		if r.syscalls >= 0 {
			calls = fmt.Sprintf("%.1f", float64(r.syscalls)/float64(st.Files))
		}
		_, _ = fmt.Fprintf(w, "| %-34s | %8.2f | %8.1f | %8.2f | %8.2f | %10s | %5.1f MiB | %9.1fx |\n",
			r.name, r.seconds, float64(st.Bytes)/1e6/r.seconds, r.cpu, r.sys, calls, float64(r.rssKiB)/1024,
			dwo.seconds/r.seconds)
	}
	_, _ = fmt.Fprintln(w)
}

func dashes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '-'
	}
	return string(b)
}

func find(rows []row, k phase) row {
	for _, r := range rows {
		if r.kind == k {
			return r
		}
	}
	return row{seconds: 1}
}

// checkBars prints each bar of docs/benchmarks.md and returns how many were missed.
func checkBars(w io.Writer, rows []row) int {
	dwo, pigz := find(rows, phaseDWO), find(rows, phasePigz)
	first, unchanged := find(rows, phaseFirst), find(rows, phaseUnchanged)
	dwoRestore, restore := find(rows, phaseDWORestore), find(rows, phaseRestore)
	peak, restorePeak := int64(0), int64(0)
	for _, r := range rows {
		switch r.kind {
		case phaseFirst, phaseUnchanged, phaseTouched:
			peak = max(peak, r.rssKiB)
		case phaseRestore, phaseRestoreOther:
			restorePeak = max(restorePeak, r.rssKiB)
		case phaseOther, phaseDWO, phasePigz, phaseDWORestore: // not the mover
		}
	}
	return bars.Print(w, 46, []bars.Bar{
		{Name: "first backup >= 10x faster than DWO", OK: dwo.seconds >= 10*first.seconds,
			Got: fmt.Sprintf("%.1fx", dwo.seconds/first.seconds)},
		{Name: "first backup faster than tar | pigz -1 -p2", OK: first.seconds < pigz.seconds,
			Got: fmt.Sprintf("%.2f s vs %.2f s", first.seconds, pigz.seconds)},
		{Name: "unchanged backup < 1% of DWO's time", OK: unchanged.seconds < dwo.seconds/100,
			Got: fmt.Sprintf("%.3f%%", 100*unchanged.seconds/dwo.seconds)},
		{Name: "unchanged backup uploads < 1 MiB", OK: unchanged.uploaded < mib,
			Got: fmt.Sprintf("%d bytes", unchanged.uploaded)},
		{Name: "mover peak RSS < 100 MiB", OK: peak < 100*1024, Got: fmt.Sprintf("%.1f MiB", float64(peak)/1024)},
		{Name: "mover restore >= 2x faster than DWO's restore", OK: dwoRestore.seconds >= 2*restore.seconds,
			Got: fmt.Sprintf("%.1fx (%.2f s vs %.2f s)", dwoRestore.seconds/restore.seconds, restore.seconds,
				dwoRestore.seconds)},
		{Name: "mover restore peak RSS < 100 MiB", OK: restorePeak < 100*1024,
			Got: fmt.Sprintf("%.1f MiB", float64(restorePeak)/1024)},
	})
}
