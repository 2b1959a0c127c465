package mover

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// PeakMemoryLine starts the line cmd/mover writes on stderr before it exits,
// so a Job's log tells what memory limit the mover needed; tests and the
// benchmark parse it (see internal/mover/movertest).
const PeakMemoryLine = "peak memory (VmHWM): "

// PeakMemoryKiB reads VmHWM, the high-water resident set size, of a process
// from /proc/<pid>/status ("self" for this one).
func PeakMemoryKiB(pid string) (int64, error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:")); ok {
			return strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%s/status", pid)
}
