package mover

import (
	"fmt"
	"io"
	"time"
)

// DefaultProgressInterval is how often a progress line is written.
const DefaultProgressInterval = 5 * time.Second

// startProgress writes one line every interval until the returned stop is called.
func startProgress(w io.Writer, interval time.Duration, verb string, c *counters) (stop func()) {
	if w == nil {
		return func() {}
	}
	if interval <= 0 {
		interval = DefaultProgressInterval
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				writeProgress(w, verb, c, time.Since(start))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func writeProgress(w io.Writer, verb string, c *counters, elapsed time.Duration) {
	b := c.bytes.Load()
	rate := float64(b) / max(elapsed.Seconds(), 0.001) / (1 << 20)
	_, _ = fmt.Fprintf(w, "%s: %d files, %.1f MiB, %.1f MiB/s, %s elapsed\n",
		verb, c.files.Load(), float64(b)/(1<<20), rate, elapsed.Round(time.Second))
}
