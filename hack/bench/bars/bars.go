// Package bars prints the PASS/MISS lines with which the benchmarks check the bars of docs/benchmarks.md.
package bars

import (
	"fmt"
	"io"
)

// Bar is one performance bar and what was measured against it.
type Bar struct {
	Name string
	OK   bool
	Got  string
}

// Print writes a PASS or MISS line per bar, names padded to width, and returns how many were missed.
func Print(w io.Writer, width int, bars []Bar) int {
	missed := 0
	for _, b := range bars {
		verdict := "PASS"
		if !b.OK {
			verdict, missed = "MISS", missed+1
		}
		_, _ = fmt.Fprintf(w, "%s  %-*s %s\n", verdict, width, b.Name, b.Got)
	}
	return missed
}
