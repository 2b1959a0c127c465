package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// scrapeInterval is how often the bench scrapes the manager's metrics: much more often than a
// Prometheus would (30 s is usual), so the cost of building the series shows in the manager's
// memory and CPU.
const scrapeInterval = 2 * time.Second

// scrapeStats is what scraping the manager's metrics endpoint during the run saw.
type scrapeStats struct {
	scrapes, failures int
	maxSeconds        float64 // the slowest scrape
	maxBytes          int
	series            int // dwbackup_ samples in the last scrape
	workspaceSeries   int // of them, the per-workspace ones (label namespace)
}

// scraper scrapes the manager's metrics endpoint every scrapeInterval until stopped.
type scraper struct {
	url      string
	stopCh   chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	mu       sync.Mutex
	stats    scrapeStats
}

// freeLoopbackAddr is a free 127.0.0.1 port for the manager's metrics listener.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

func startScraper(addr string) *scraper {
	s := &scraper{url: "http://" + addr + "/metrics", stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(scrapeInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-t.C:
				s.scrapeOnce()
			}
		}
	}()
	return s
}

func (s *scraper) scrapeOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	series, workspaceSeries, size, err := scrape(ctx, s.url)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.scrapes++
	if err != nil {
		s.stats.failures++
		return
	}
	s.stats.maxSeconds = max(s.stats.maxSeconds, time.Since(start).Seconds())
	s.stats.maxBytes = max(s.stats.maxBytes, size)
	s.stats.series, s.stats.workspaceSeries = series, workspaceSeries
}

// stop ends the periodic scrapes (safe to call more than once).
func (s *scraper) stop() {
	s.stopOnce.Do(func() { close(s.stopCh) })
	<-s.done
}

// finish stops the periodic scrapes and scrapes once more (the final series count).
func (s *scraper) finish() scrapeStats {
	s.stop()
	s.scrapeOnce()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// scrape reads the metrics endpoint and counts the operator's samples.
func scrape(ctx context.Context, url string) (series, workspaceSeries, size int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 64*1024), 1024*1024)
	for lines.Scan() {
		line := lines.Text()
		size += len(line) + 1
		if !strings.HasPrefix(line, "dwbackup_") {
			continue
		}
		series++
		if strings.Contains(line, "namespace=") {
			workspaceSeries++
		}
	}
	return series, workspaceSeries, size, lines.Err()
}
