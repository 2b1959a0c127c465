// Package movertest runs a mover binary as a subprocess and reports its peak
// memory: the VmHWM the mover reads from its own /proc/<pid>/status after all
// its work and writes on stderr (mover.PeakMemoryLine).
//
// Why the mover reads it itself: /proc/<pid>/status loses VmHWM when the
// process exits, so a parent can only sample it, and wait4's ru_maxrss is
// wrong for Go parents: Go starts children with vfork, and the kernel counts
// the parent's high-water RSS into the child's at exec.
package movertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// Measured is one finished mover run.
type Measured struct {
	Result     []byte  // the result JSON the mover wrote
	ExitCode   int     // the mover's exit status
	PeakRSSKiB int64   // the mover's VmHWM
	CPUSeconds float64 // user + system time
	SysSeconds float64 // system time alone
}

// Run runs bin with args followed by --result-file <temp file>; the mover's
// stderr is copied to stderr when that is not nil.
func Run(ctx context.Context, bin string, args []string, stderr io.Writer) (Measured, error) {
	dir, err := os.MkdirTemp("", "movertest-")
	if err != nil {
		return Measured{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	resultFile := filepath.Join(dir, "result.json")
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(args, "--result-file", resultFile)...)
	cmd.Stderr = &log
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(&log, stderr)
	}
	if err := cmd.Run(); err != nil {
		if _, ok := errors.AsType[*exec.ExitError](err); !ok {
			return Measured{}, err
		}
	}
	m := Measured{ExitCode: cmd.ProcessState.ExitCode()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.CPUSeconds = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
		m.SysSeconds = float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
	}
	if m.Result, err = os.ReadFile(resultFile); err != nil {
		return m, fmt.Errorf("mover exit %d wrote no result: %w\n%s", m.ExitCode, err, log.Bytes())
	}
	if m.PeakRSSKiB, err = peakFromLog(log.Bytes()); err != nil {
		return m, fmt.Errorf("%w\n%s", err, log.Bytes())
	}
	return m, nil
}

func peakFromLog(log []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), mover.PeakMemoryLine); ok {
			return strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		}
	}
	return 0, errors.New("the mover wrote no peak memory line")
}

// PeakRSSKiB reads VmHWM of a live process (for sampling other tools).
func PeakRSSKiB(pid int) (int64, error) { return mover.PeakMemoryKiB(strconv.Itoa(pid)) }
