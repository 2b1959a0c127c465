package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dwbackup/devworkspace-backup-operator/internal/mover/movertest"
)

// The restore rows: DWO's restore script (workspace-recovery.sh --restore, as
// docs/benchmarks.md describes it) against `mover restore`, both from the
// artifact of the mover's first backup, into an empty directory on the same
// filesystem. Each method runs twice: timed, then under `perf stat` to count its
// system calls (a tracepoint counter slows every call, so it never runs timed).

// restoreTag is the mover's first backup: the tree as generated.
const restoreTag = "20261126T020000Z"

// stepper builds the commands of one run, wrapped in `perf stat` when it counts
// system calls; children are counted too (gzip under tar -z).
type stepper struct {
	ctx  context.Context
	perf string // empty: a timed run
	dir  string // where perf writes its counts
	outs []string
}

func (s *stepper) command(argv ...string) *exec.Cmd {
	if s.perf == "" {
		return exec.CommandContext(s.ctx, argv[0], argv[1:]...)
	}
	out := filepath.Join(s.dir, fmt.Sprintf("perf-%d.csv", len(s.outs)))
	s.outs = append(s.outs, out)
	return exec.CommandContext(s.ctx, s.perf, append([]string{"stat", "-x,", "-e", "raw_syscalls:sys_enter",
		"-o", out, "--"}, argv...)...)
}

// syscalls sums what perf counted over the run's commands.
func (s *stepper) syscalls() (int64, error) {
	var total int64
	for _, out := range s.outs {
		n, err := perfCount(out)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func perfCount(file string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ",")
		if len(fields) > 2 && fields[2] == "raw_syscalls:sys_enter" {
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no system call count in %s", file)
}

// perfUsable finds perf and checks that it may count the syscall tracepoint
// (root, or a permissive perf_event_paranoid); otherwise the column shows "-".
func perfUsable() string {
	p, err := exec.LookPath("perf")
	if err != nil {
		return ""
	}
	if exec.Command(p, "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-o", os.DevNull, "--", "true").Run() != nil {
		return ""
	}
	return p
}

// restoreMethod runs one restore into dir and returns its wall seconds (clean-up
// excluded), its processes' stats and the directory holding the restored tree.
type restoreMethod func(s *stepper, dir string) (float64, procStats, string, error)

// restoreStep times method, checks what it restored, then counts its syscalls in a second run.
func (b *bench) restoreStep(name string, kind phase, method restoreMethod) func(context.Context) (row, error) {
	return func(ctx context.Context) (row, error) {
		dir, err := b.restoreDir()
		if err != nil {
			return row{}, err
		}
		secs, st, restored, err := method(&stepper{ctx: ctx}, dir)
		if err != nil {
			return row{}, fmt.Errorf("%s: %w", name, err)
		}
		if err := b.checkRestored(restored); err != nil {
			return row{}, fmt.Errorf("%s: %w", name, err)
		}
		r := row{name: name, seconds: secs, cpu: st.cpu, sys: st.sys, rssKiB: st.rssKiB, uploaded: -1, syscalls: -1,
			kind: kind}
		if b.perf != "" {
			if dir, err = b.restoreDir(); err != nil {
				return row{}, err
			}
			s := &stepper{ctx: ctx, perf: b.perf, dir: dir}
			if _, _, _, err := method(s, dir); err != nil {
				return row{}, fmt.Errorf("%s under perf: %w", name, err)
			}
			if r.syscalls, err = s.syscalls(); err != nil {
				return row{}, err
			}
		}
		return r, nil
	}
}

// restoreDir is a new directory for one restore run, after a sync so that no
// run pays for the write-back of the one before. Restored trees are removed
// only with the work directory at the end: ext4 skips inodes deleted in the
// last 1-6 minutes when it allocates new ones (recently_deleted in
// fs/ext4/ialloc.c), and after removing a 63k-file tree every create scans
// them: a restore right after one took 23-31 s instead of 6.3 s, ~60% of its samples in that scan (perf).
func (b *bench) restoreDir() (string, error) {
	b.restores++
	dir := filepath.Join(b.work, fmt.Sprintf("restore-%d", b.restores))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	syscall.Sync()
	return dir, nil
}

// dwoRestore is workspace-recovery.sh --restore: oras pull --output /tmp, mkdir
// /tmp/extracted-backup, tar -xzvf into it, check that the target is empty, cp -r
// into the target. One difference: the script copies extracted-backup/*, which
// leaves out names starting with a dot (.git here), so the benchmark copies
// extracted-backup/. to restore the same tree. The script's clean-up (rm -f of
// the archive, rm -rf of the copy) is left out (see restoreDir).
func (b *bench) dwoRestore(ref string) restoreMethod {
	return func(s *stepper, dir string) (float64, procStats, string, error) {
		tmp, target := filepath.Join(dir, "tmp"), filepath.Join(dir, "projects")
		for _, d := range []string{tmp, target} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return 0, procStats{}, "", err
			}
		}
		extracted := filepath.Join(tmp, "extracted-backup")
		out, err := devNull()
		if err != nil {
			return 0, procStats{}, "", err
		}
		defer func() { _ = out.Close() }()
		var total procStats
		var seconds float64
		steps := []struct {
			name string
			run  func() (procStats, error)
		}{
			{"oras pull", func() (procStats, error) {
				cmd := s.command(b.cfg.oras, "pull", "--plain-http", "--no-tty", ref, "--output", tmp)
				cmd.Stdout = out
				return runCmd(cmd)
			}},
			{"tar -xzvf", func() (procStats, error) {
				if err := os.Mkdir(extracted, 0o755); err != nil {
					return procStats{}, err
				}
				cmd := s.command("tar", "-xzvf", filepath.Join(tmp, dwoArchive), "-C", extracted)
				cmd.Stdout = out // the script's -v listing goes to the pod's log
				return runCmd(cmd)
			}},
			{"cp -r", func() (procStats, error) {
				names, err := os.ReadDir(target)
				if err != nil {
					return procStats{}, err
				}
				if len(names) > 0 {
					return procStats{}, fmt.Errorf("target not empty (%d entries)", len(names))
				}
				return runCmd(s.command("cp", "-r", extracted+"/.", target))
			}},
		}
		for _, step := range steps {
			secs, err := elapsed(func() error {
				st, err := step.run()
				total = total.add(st)
				return err
			})
			if err != nil {
				return 0, procStats{}, "", err
			}
			seconds += secs
			if s.perf == "" {
				fmt.Fprintf(os.Stderr, "  DWO restore: %-10s %6.2f s\n", step.name, secs)
			}
		}
		return seconds, total, target, nil
	}
}

// moverRestore is `mover restore` into a target that does not exist yet.
func (b *bench) moverRestore(ref string) restoreMethod {
	return func(s *stepper, dir string) (float64, procStats, string, error) {
		target := filepath.Join(dir, "projects")
		args := []string{"restore", "--target", target, "--reference", ref, insecureFlag}
		if s.perf != "" {
			argv := append([]string{b.cfg.mover}, args...)
			_, err := runCmd(s.command(append(argv, "--result-file", filepath.Join(dir, "result.json"))...))
			return 0, procStats{}, target, err
		}
		var m movertest.Measured
		secs, err := elapsed(func() error {
			var err error
			m, err = movertest.Run(s.ctx, b.cfg.mover, args, os.Stderr)
			return err
		})
		if err != nil {
			return 0, procStats{}, "", err
		}
		if err := checkResult(m, false); err != nil {
			return 0, procStats{}, "", err
		}
		return secs, procStats{cpu: m.CPUSeconds, sys: m.SysSeconds, rssKiB: m.PeakRSSKiB}, target, nil
	}
}

// checkRestored compares the restored regular files with the generated tree:
// their number and total size (DWO's cp -r keeps neither mtimes nor owners).
func (b *bench) checkRestored(dir string) error {
	return checkFiles(dir, b.treeFiles, b.treeBytes)
}

// checkFiles compares the number and total size of the regular files below dir with want.
func checkFiles(dir string, wantFiles int, wantBytes int64) error {
	files, size, err := countFiles(dir)
	switch {
	case err != nil:
		return err
	case files != wantFiles || size != wantBytes:
		return fmt.Errorf("restored %d files, %d bytes; the tree has %d files, %d bytes",
			files, size, wantFiles, wantBytes)
	}
	return nil
}

// countFiles counts the regular files below dir and their bytes.
func countFiles(dir string) (files int, size int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		size += info.Size()
		return nil
	})
	return files, size, err
}
