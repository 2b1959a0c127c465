// Command benchcontroller measures the control-plane bars of docs/benchmarks.md against a real
// kube-apiserver and etcd (envtest), in one run on one machine:
//
//	go run ./hack/bench/cmd/benchcontroller -manager bin/manager [-scale 0.1]
//
// It starts envtest with an audit log, populates 1,000 namespaces with 10,000 DevWorkspaces (2,000
// of them stopped, with a Bound per-workspace PVC), times a plain client creating the 2,000
// WorkspaceBackups a slot needs at a fixed client-side QPS, then runs the manager binary as a
// subprocess at the same QPS, creates one BackupPolicy and times how long its first slot takes to
// create the same 2,000 WorkspaceBackups. It then plays the Job controller and the kubelet for a
// number of mover Jobs, so some backups go all the way to Succeeded, counts the manager's API
// writes from the audit log, reads the manager's peak RSS, prints a table and checks the bars
// (exit status 1 when one is missed).
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

type config struct {
	scale   float64
	qps     float64
	burst   int
	manager string
	drain   int
	workers int
	verbose bool
	keep    bool
	// chaos > 0 runs the chaos benchmark (chaos.go) with that many SIGKILLs instead.
	chaos            int
	chaosConcurrency int
	// goMemLimit is the manager's GOMEMLIMIT, as config/manager/manager.yaml sets it.
	goMemLimit string
}

// shape is the population one scale yields: 10 DevWorkspaces per namespace, 2 of them stopped.
type shape struct {
	namespaces   int
	perNamespace int
	stoppedPerNS int
}

func (s shape) workspaces() int { return s.namespaces * s.perNamespace }
func (s shape) stopped() int    { return s.namespaces * s.stoppedPerNS }

func main() {
	var c config
	flag.Float64Var(&c.scale, "scale", 1, "1: 1,000 namespaces, 10,000 DevWorkspaces, 2,000 stopped; 0.1: a tenth")
	flag.Float64Var(&c.qps, "qps", 50, "client-side QPS of the plain client and of the manager (--kube-api-qps)")
	flag.IntVar(&c.burst, "burst", 100, "client-side burst of the plain client and of the manager (--kube-api-burst)")
	flag.StringVar(&c.manager, "manager", "bin/manager", "the manager binary (go build -o bin/manager ./cmd/main.go)")
	flag.IntVar(&c.drain, "drain", 100, "backups taken to Succeeded by playing the Job controller (0: none)")
	flag.IntVar(&c.workers, "workers", 32, "concurrent requests while populating (setup, not measured)")
	flag.BoolVar(&c.verbose, "v", false, "show the manager's log")
	flag.StringVar(&c.goMemLimit, "gomemlimit", "100MiB",
		"the manager's GOMEMLIMIT (as config/manager/manager.yaml deploys it)")
	flag.IntVar(&c.chaos, "chaos", 0, "SIGKILL the manager this many times during a slot (make bench-chaos) instead")
	flag.IntVar(&c.chaosConcurrency, "chaos-concurrency", 20, "maxConcurrentBackups of the chaos benchmark's policies")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (audit log, kubeconfig, manager log)")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // the benchmark reports on stderr itself; the manager logs to its file

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchcontroller: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	sh := shape{namespaces: max(1, int(math.Round(1000*c.scale))), perNamespace: 10, stoppedPerNS: 2}
	if _, err := os.Stat(c.manager); err != nil {
		return fmt.Errorf("manager binary: %w (go build -o bin/manager ./cmd/main.go)", err)
	}
	work, err := os.MkdirTemp("", "dwbackup-benchcontroller-")
	if err != nil {
		return err
	}
	if c.keep {
		logf("work directory %s", work)
	} else {
		defer func() { _ = os.RemoveAll(work) }()
	}
	cp, err := startControlPlane(work)
	if err != nil {
		return err
	}
	defer cp.stop()

	start := time.Now()
	pop, err := populate(ctx, cp.admin, sh, c.workers)
	if err != nil {
		return fmt.Errorf("populate: %w", err)
	}
	logf("populated %d namespaces, %d DevWorkspaces (%d stopped) in %s",
		sh.namespaces, sh.workspaces(), sh.stopped(), time.Since(start).Round(time.Second))

	if c.chaos > 0 {
		return runChaos(ctx, cp, pop, c, work)
	}
	base, err := runBaseline(ctx, cp, pop, c)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	mgr, err := runManager(ctx, cp, pop, c, work)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	writes, err := countWrites(cp.auditPath, managerUser, mgr)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	res := results{cfg: c, shape: sh, baseline: base, manager: mgr, writes: writes}
	res.print(os.Stdout)
	if missed := res.checkBars(os.Stdout); missed > 0 {
		return fmt.Errorf("%d bar(s) missed", missed)
	}
	return nil
}

// logf reports progress on stderr, so stdout holds only the table.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
