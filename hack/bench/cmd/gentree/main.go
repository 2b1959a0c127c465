// Command gentree writes the benchmark's workspace-like tree (docs/benchmarks.md):
//
//	go run ./hack/bench/cmd/gentree -out /var/tmp/tree [-scale 0.1]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/gentree"
)

func main() {
	out := flag.String("out", "", "directory to create (must not exist or be empty)")
	scale := flag.Float64("scale", 1, "1 is about 63k files and 1 GiB; 0.1 about 100 MiB")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gentree: -out is required")
		os.Exit(2)
	}
	start := time.Now()
	st, err := gentree.Generate(context.Background(), *out, *scale, runtime.GOMAXPROCS(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gentree: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("gentree: %d files, %.1f MiB in %s at %s\n", st.Files, float64(st.Bytes)/(1<<20),
		time.Since(start).Round(time.Millisecond), *out)
}
