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
	peak := int64(0)
	for _, r := range rows {
		if r.kind == phaseFirst || r.kind == phaseUnchanged || r.kind == phaseTouched {
			peak = max(peak, r.rssKiB)
		}
	}
	return bars.Print(w, 44, []bars.Bar{
		{Name: "first backup >= 10x faster than DWO", OK: dwo.seconds >= 10*first.seconds,
			Got: fmt.Sprintf("%.1fx", dwo.seconds/first.seconds)},
		{Name: "first backup faster than tar | pigz -1 -p2", OK: first.seconds < pigz.seconds,
			Got: fmt.Sprintf("%.2f s vs %.2f s", first.seconds, pigz.seconds)},
		{Name: "unchanged backup < 1% of DWO's time", OK: unchanged.seconds < dwo.seconds/100,
			Got: fmt.Sprintf("%.3f%%", 100*unchanged.seconds/dwo.seconds)},
		{Name: "unchanged backup uploads < 1 MiB", OK: unchanged.uploaded < mib,
			Got: fmt.Sprintf("%d bytes", unchanged.uploaded)},
		{Name: "mover peak RSS < 100 MiB", OK: peak < 100*1024, Got: fmt.Sprintf("%.1f MiB", float64(peak)/1024)},
	})
}
