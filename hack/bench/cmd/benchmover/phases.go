package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/gentree"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover/movertest"
)

// DWO's artifact, as its backup Job makes it.
const (
	dwoArchive      = "devworkspace-backup.tar.gz"
	dwoArtifactType = "application/vnd.devworkspace.backup.artifact.v1+json"
)

type bench struct {
	cfg       config
	work      string
	tree      string
	reg       *registry
	treeBytes int64
	treeFiles int
	perf      string // perf, to count system calls; empty when it cannot
	restores  int    // restore directories made so far
}

// procStats describe finished processes. Peak RSS is VmHWM: exact for the
// mover (movertest reads it as the mover writes its result), and sampled every
// 10 ms for the other tools, whose children (gzip under tar -z) are not counted.
// wait4's ru_maxrss is useless here: Go starts children with vfork and the
// kernel counts this (larger) process's RSS into the child's at exec.
type procStats struct {
	cpu    float64 // user + system
	sys    float64
	rssKiB int64
}

// cpuOf is the user+system and the system time of a finished process,
// its waited-for children included (gzip under tar -z).
func cpuOf(ps *os.ProcessState) (cpu, sys float64) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0
	}
	sys = float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
	return float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6 + sys, sys
}

func (s procStats) add(o procStats) procStats {
	return procStats{cpu: s.cpu + o.cpu, sys: s.sys + o.sys, rssKiB: max(s.rssKiB, o.rssKiB)}
}

// sampleHWM polls VmHWM of pid until stop is called, and returns the last value seen.
func sampleHWM(pid int) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := movertest.PeakRSSKiB(pid); err == nil {
				peak.Store(max(peak.Load(), v))
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// runCmd runs one command to completion, its output to stderr unless set.
func runCmd(cmd *exec.Cmd) (procStats, error) {
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return procStats{}, err
	}
	stop := sampleHWM(cmd.Process.Pid)
	err := cmd.Wait()
	st := procStats{rssKiB: stop()}
	st.cpu, st.sys = cpuOf(cmd.ProcessState)
	if err != nil {
		return procStats{}, fmt.Errorf("%s: %w", cmd.String(), err)
	}
	return st, nil
}

// runPipe runs producer | consumer through an OS pipe.
func runPipe(producer, consumer *exec.Cmd) (procStats, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return procStats{}, err
	}
	producer.Stdout, consumer.Stdin = w, r
	producer.Stderr, consumer.Stderr = os.Stderr, os.Stderr
	if err := producer.Start(); err != nil {
		return procStats{}, err
	}
	if err := consumer.Start(); err != nil {
		_ = producer.Process.Kill()
		return procStats{}, err
	}
	_ = w.Close()
	_ = r.Close()
	stopP, stopC := sampleHWM(producer.Process.Pid), sampleHWM(consumer.Process.Pid)
	perr, cerr := producer.Wait(), consumer.Wait()
	st := procStats{rssKiB: max(stopP(), stopC())}
	st.cpu, st.sys = cpuOf(producer.ProcessState)
	cpu, sys := cpuOf(consumer.ProcessState)
	st.cpu, st.sys = st.cpu+cpu, st.sys+sys
	if perr != nil || cerr != nil {
		return procStats{}, fmt.Errorf("%s | %s: %w", producer.String(), consumer.String(), firstErr(perr, cerr))
	}
	return st, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func devNull() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_WRONLY, 0) }

// runAll runs every method in order; the tar | cat pass first also warms the
// page cache, so every method reads a hot tree (docs/benchmarks.md).
func (b *bench) runAll(ctx context.Context) ([]row, error) {
	steps := []func(context.Context) (row, error){
		b.tarCat, b.dwo, b.tarPigz,
		b.moverStep("mover, first backup", restoreTag, phaseFirst),
		b.moverStep("mover, unchanged", "20261126T030000Z", phaseUnchanged),
		b.touchThenMover,
		b.restoreStep("DWO: oras pull + tar -xzf + cp -r", phaseDWORestore, b.dwoRestore(b.moverRef())),
		b.restoreStep("mover restore", phaseRestore, b.moverRestore(b.moverRef())),
		b.restoreStep("mover restore of DWO's artifact", phaseRestoreOther, b.moverRestore(b.dwoRef())),
	}
	var rows []row
	for _, step := range steps {
		r, err := step(ctx)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "%-34s %8.2f s\n", r.name, r.seconds)
		rows = append(rows, r)
	}
	return rows, nil
}

// moverRef is the mover's first backup; dwoRef the artifact DWO's method pushed.
func (b *bench) moverRef() string { return b.reg.Host + "/bench/mover/ws:" + restoreTag }
func (b *bench) dwoRef() string   { return b.reg.Host + "/bench/dwo/ws:" + restoreTag }

func (b *bench) tarCat(ctx context.Context) (row, error) {
	return b.tarInto(ctx, "tar | cat (read limit)", phaseOther, "cat")
}

// dwo is DevWorkspace Operator's method: tar -czf to a file, then oras push.
func (b *bench) dwo(ctx context.Context) (row, error) {
	dir := filepath.Join(b.work, "dwo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return row{}, err
	}
	before := b.reg.Sent()
	var st procStats
	secs, err := elapsed(func() error {
		tar := exec.CommandContext(ctx, "tar", "-czf", filepath.Join(dir, dwoArchive), "-C", b.tree, ".")
		s1, err := runCmd(tar)
		if err != nil {
			return err
		}
		push := exec.CommandContext(ctx, b.cfg.oras, "push", "--plain-http", "--no-tty",
			b.reg.Host+"/bench/dwo/ws:"+restoreTag, "--artifact-type", dwoArtifactType,
			"--annotation", "devworkspace.name=ws", "--annotation", "devworkspace.namespace=ns", dwoArchive)
		push.Dir = dir
		push.Stdout = nil
		s2, err := runCmd(push)
		st = s1.add(s2)
		return err
	})
	_ = os.RemoveAll(dir)
	return row{name: "DWO: tar -czf + oras push", seconds: secs, cpu: st.cpu, rssKiB: st.rssKiB,
		uploaded: b.reg.Sent() - before, kind: phaseDWO}, err
}

func (b *bench) tarPigz(ctx context.Context) (row, error) {
	return b.tarInto(ctx, "tar | pigz -1 -p2 > /dev/null", phasePigz, "pigz", "-1", "-p2")
}

// tarInto times `tar -cf - tree | filter > /dev/null`.
func (b *bench) tarInto(ctx context.Context, name string, kind phase, filter ...string) (row, error) {
	out, err := devNull()
	if err != nil {
		return row{}, err
	}
	defer func() { _ = out.Close() }()
	var st procStats
	secs, err := elapsed(func() error {
		f := exec.CommandContext(ctx, filter[0], filter[1:]...)
		f.Stdout = out
		st, err = runPipe(exec.CommandContext(ctx, "tar", "-cf", "-", "-C", b.tree, "."), f)
		return err
	})
	return row{name: name, seconds: secs, cpu: st.cpu, rssKiB: st.rssKiB, uploaded: -1, kind: kind}, err
}

// moverResult is the part of the mover's result JSON the table shows.
type moverResult struct {
	Phase     string `json:"phase"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Unchanged bool   `json:"unchanged"`
}

func (b *bench) moverStep(name, tag string, kind phase) func(context.Context) (row, error) {
	return func(ctx context.Context) (row, error) {
		before := b.reg.Sent()
		var m movertest.Measured
		secs, err := elapsed(func() error {
			var err error
			m, err = movertest.Run(ctx, b.cfg.mover, []string{"backup", "--source", b.tree,
				"--repository", b.reg.Host + "/bench/mover/ws", "--tag", tag, "--workspace", "ws", "--namespace", "ns",
				insecureFlag}, os.Stderr)
			return err
		})
		if err != nil {
			return row{}, err
		}
		if err := checkResult(m, kind == phaseUnchanged); err != nil {
			return row{}, fmt.Errorf("%s: %w", name, err)
		}
		st := procStats{cpu: m.CPUSeconds, rssKiB: m.PeakRSSKiB}
		return row{name: name, seconds: secs, cpu: st.cpu, rssKiB: st.rssKiB,
			uploaded: b.reg.Sent() - before, kind: kind}, nil
	}
}

func checkResult(m movertest.Measured, wantUnchanged bool) error {
	var res moverResult
	if err := json.Unmarshal(m.Result, &res); err != nil {
		return fmt.Errorf("mover exit %d, result %q: %w", m.ExitCode, m.Result, err)
	}
	if res.Phase != "Succeeded" || res.Unchanged != wantUnchanged {
		return fmt.Errorf("mover result %s/%s unchanged=%v (want unchanged=%v): %s",
			res.Phase, res.Reason, res.Unchanged, wantUnchanged, res.Message)
	}
	return nil
}

// touchThenMover moves the mtime of 1% of the files, then backs up again: the
// fingerprint differs, so the whole tree is streamed (one layer, no dedup).
func (b *bench) touchThenMover(ctx context.Context) (row, error) {
	n, err := gentree.Touch(b.tree, 0.01)
	if err != nil {
		return row{}, err
	}
	r, err := b.moverStep(fmt.Sprintf("mover, %d files (1%%) touched", n), "20261126T040000Z", phaseTouched)(ctx)
	return r, err
}
