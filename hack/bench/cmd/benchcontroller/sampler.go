package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// memStats is the manager's memory and CPU as the kernel accounts them.
type memStats struct {
	peakKiB    int64 // VmHWM just before the manager is stopped: the true peak RSS
	sampledKiB int64 // the largest VmRSS sampled every 250 ms (a check on VmHWM)
	lastKiB    int64 // VmRSS at the end
	cpuSeconds float64
	samples    int
}

// sampler reads /proc/<pid>/status periodically until finish.
type sampler struct {
	pid  int
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	mu   sync.Mutex
	st   memStats
}

func startSampler(pid int) *sampler {
	s := &sampler{pid: pid, done: make(chan struct{})}
	s.wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
				s.sample()
			}
		}
	})
	return s
}

func (s *sampler) sample() {
	rss, _, err := readMemory(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.sampledKiB = max(s.st.sampledKiB, rss)
	s.st.lastKiB = rss
	s.st.samples++
}

// finish stops sampling and reads the peak and the CPU time once, while the process still runs.
func (s *sampler) finish() memStats {
	s.once.Do(func() {
		close(s.done)
		s.wg.Wait()
		s.sample()
		_, hwm, err := readMemory(s.pid)
		if err != nil {
			logf("reading the manager's VmHWM: %v", err)
		}
		cpu, err := readCPU(s.pid)
		if err != nil {
			logf("reading the manager's CPU time: %v", err)
		}
		s.mu.Lock()
		s.st.peakKiB, s.st.cpuSeconds = hwm, cpu
		s.mu.Unlock()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// readMemory returns VmRSS and VmHWM in KiB.
func readMemory(pid int) (rss, hwm int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm, sc.Err()
}

// readCPU returns utime + stime of the process in seconds.
func readCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: count fields after the last ')'.
	rest := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(rest) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(rest[11], 10, 64)
	stime, _ := strconv.ParseInt(rest[12], 10, 64)
	return float64(utime+stime) / clockTicks, nil
}
