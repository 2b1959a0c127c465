// Command benchmover measures the mover against DevWorkspace Operator's backup
// and restore methods on the workspace-like tree of docs/benchmarks.md, in one
// run on one machine:
//
//	go run ./hack/bench/cmd/benchmover -mover bin/mover -oras bin/oras [-scale 0.1]
//
// It generates the tree under a temporary directory, starts docker-registry on
// a free loopback port behind a byte-counting proxy, runs each method, prints
// a table of backups and one of restores (restore.go) and checks the bars of
// docs/benchmarks.md (exit status 1 when one is missed).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/gentree"
)

// insecureFlag lets the mover talk plain HTTP to the benchmark's loopback registry.
const insecureFlag = "--insecure"

type config struct {
	scale    float64
	workRoot string
	mover    string
	oras     string
	registry string
	keep     bool
	verbose  bool
	// historyOnly runs only the seven-backup history of the layered format.
	historyOnly bool
	// groupBytes is passed to the layered backups as --group-bytes (0: the mover's default).
	groupBytes int64
}

func main() {
	var c config
	flag.Float64Var(&c.scale, "scale", 1, "tree scale: 1 is about 63k files and 1 GiB, 0.1 about 100 MiB")
	flag.StringVar(&c.workRoot, "work", "/var/tmp", "where the temporary tree, archive and registry storage go")
	flag.StringVar(&c.mover, "mover", "bin/mover", "the mover binary (make build)")
	flag.StringVar(&c.oras, "oras", "bin/oras", "oras v1.3.6, as DWO uses it")
	flag.StringVar(&c.registry, "registry", "docker-registry", "Debian's docker-registry binary")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&c.verbose, "v", false, "show docker-registry's log")
	flag.BoolVar(&c.historyOnly, "history-only", false, "run only the seven backups of single-layer vs layered")
	flag.Int64Var(&c.groupBytes, "group-bytes", 0, "--group-bytes of the layered backups (0: the mover's default)")
	flag.Parse()
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintf(os.Stderr, "benchmover: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if err := checkTools(&c); err != nil {
		return err
	}
	work, err := os.MkdirTemp(c.workRoot, "dwbackup-bench-")
	if err != nil {
		return err
	}
	if !c.keep {
		defer func() { _ = os.RemoveAll(work) }()
	}
	tree := filepath.Join(work, "tree")
	fmt.Fprintf(os.Stderr, "generating the tree (scale %g) in %s\n", c.scale, tree)
	st, err := gentree.Generate(ctx, tree, c.scale, runtime.GOMAXPROCS(0))
	if err != nil {
		return fmt.Errorf("generate tree: %w", err)
	}
	reg, err := startRegistry(ctx, c.registry, filepath.Join(work, "registry"), c.verbose)
	if err != nil {
		return err
	}
	defer reg.stop()
	b := &bench{cfg: c, work: work, tree: tree, reg: reg, treeBytes: st.Bytes, treeFiles: st.Files, perf: perfUsable()}
	var rows []row
	if !c.historyOnly {
		if rows, err = b.runAll(ctx); err != nil {
			return err
		}
	}
	history, err := b.history(ctx)
	if err != nil {
		return err
	}
	missed := 0
	if !c.historyOnly {
		printTable(os.Stdout, c.scale, st, rows)
		missed += checkBars(os.Stdout, rows)
		_, _ = fmt.Fprintln(os.Stdout)
	}
	printHistory(os.Stdout, history)
	if missed += checkHistoryBars(os.Stdout, history); missed > 0 {
		return fmt.Errorf("%d bar(s) missed", missed)
	}
	return nil
}

// checkTools resolves every binary up front, so a missing one fails before
// minutes of work; pigz in particular is an apt package the machine may lack.
func checkTools(c *config) error {
	for _, p := range []*string{&c.mover, &c.oras, &c.registry} {
		abs, err := exec.LookPath(*p)
		if err != nil {
			return fmt.Errorf("%s not found: %w (make build; make oras; apt-get install docker-registry)", *p, err)
		}
		if abs, err = filepath.Abs(abs); err != nil {
			return err
		}
		*p = abs
	}
	for _, tool := range []string{"tar", "pigz", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found in PATH (Debian: apt-get install -y %s)", tool, tool)
		}
	}
	return nil
}

// row is one measured method.
type row struct {
	name     string
	seconds  float64
	cpu      float64 // user+system seconds of the method's processes
	sys      float64 // system seconds of the method's processes
	rssKiB   int64   // peak RSS of the largest process
	uploaded int64   // bytes sent to the registry, -1 when nothing is sent
	syscalls int64   // system calls of a second, untimed run; -1 when not counted
	kind     phase
}

type phase int

const (
	phaseOther phase = iota
	phaseDWO
	phasePigz
	phaseFirst
	phaseUnchanged
	phaseTouched
	phaseDWORestore
	phaseRestore
	phaseRestoreOther
)

// restore reports whether the row is one of the restore table.
func (k phase) restore() bool { return k >= phaseDWORestore }

// elapsed runs f and returns its wall time.
func elapsed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}
