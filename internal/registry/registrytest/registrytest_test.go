package registrytest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a TB that records how a helper ended the test; Fatal and Skip stop the helper's
// goroutine as testing.T does.
type recorder struct {
	*testing.T  // Cleanup, TempDir, Helper
	fatal, skip string
}

func (r *recorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skip(args ...any) { r.skip = fmt.Sprint(args...); runtime.Goexit() }

// run calls helper with a recorder in its own goroutine and returns the recorder once it ended.
func run(t *testing.T, helper func(TB)) *recorder {
	r := &recorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		helper(r)
	}()
	<-done
	return r
}

// A missing docker-registry or oras fails the test; only DWBACKUP_SKIP_MISSING_TOOLS=1 skips it.
func TestMissingToolsFailUnlessOptedOut(t *testing.T) {
	empty := t.TempDir()
	helpers := map[string]func(TB){
		"docker-registry": func(tb TB) { StartDistribution(tb) },
		"oras":            func(tb TB) { Oras(tb) },
	}
	for tool, helper := range helpers {
		t.Run(tool, func(t *testing.T) {
			t.Setenv("PATH", empty)
			t.Setenv("ORAS", filepath.Join(empty, "oras"))

			t.Setenv(SkipMissingToolsEnv, "")
			r := run(t, helper)
			if r.skip != "" || !strings.Contains(r.fatal, tool) || !strings.Contains(r.fatal, SkipMissingToolsEnv) {
				t.Fatalf("without %s: fatal %q, skip %q; want a failure naming %s and %s", tool, r.fatal, r.skip, tool, SkipMissingToolsEnv)
			}

			t.Setenv(SkipMissingToolsEnv, "1")
			r = run(t, helper)
			if r.fatal != "" || !strings.Contains(r.skip, tool) {
				t.Fatalf("without %s, opted out: fatal %q, skip %q; want a skip", tool, r.fatal, r.skip)
			}
		})
	}
}

// ORAS naming a file that is there is used as is.
func TestOrasFromEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "oras")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil { //nolint:gosec // an executable stub
		t.Fatal(err)
	}
	t.Setenv("ORAS", p)
	t.Setenv(SkipMissingToolsEnv, "")
	if got := Oras(t); got != p {
		t.Fatalf("Oras = %q, want %q", got, p)
	}
}
