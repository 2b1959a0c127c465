package mover

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// writeRandomFiles adds n incompressible files of size bytes under dir/rand.
func writeRandomFiles(t testing.TB, dir string, n, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rand"), 0o755); err != nil {
		t.Fatal(err)
	}
	rnd := rand.NewChaCha8([32]byte{7})
	for i := range n {
		data := make([]byte, size)
		_, _ = rnd.Read(data)
		if err := os.WriteFile(filepath.Join(dir, "rand", fmt.Sprintf("f%02d", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// uploadsInProgress counts the partial uploads distribution keeps for a repository.
func uploadsInProgress(t testing.TB, d *registrytest.Distribution) int {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(d.Root, "docker/registry/v2/repositories/backups/ns/ws/_uploads/*/data"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Size() > 0 {
			n++
		}
	}
	return n
}

// The registry crashes while the layer streams: the backup fails as
// RegistryUnreachable, latest still names the previous backup once the
// registry is back on the same storage, and the next attempt succeeds.
func TestDistributionKilledMidUpload(t *testing.T) {
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	makeTree(t, src)
	ctx := context.Background()
	first := mustSucceed(t, Backup(ctx, backupOpts(d.Host, src, "20261126T020000Z")))

	// 12 MiB of random data: far more than the gzip stage buffers (4 MiB), so
	// when rand/f10 is opened the PATCH has been streaming for a while.
	writeRandomFiles(t, src, 12, 1<<20)
	var killed atomic.Bool
	o := backupOpts(d.Host, src, "20261127T020000Z")
	o.Open = func(name string) (io.ReadCloser, error) {
		if strings.HasSuffix(name, "rand/f10") && !killed.Swap(true) {
			d.Kill()
		}
		return os.Open(name)
	}
	res := Backup(ctx, o)
	if !killed.Load() {
		t.Fatal("the registry was never killed")
	}
	wantReason(t, res, ReasonRegistryUnreachable)
	if n := uploadsInProgress(t, d); n == 0 {
		t.Fatal("no partial upload in the registry's storage: the kill did not happen mid-upload")
	}

	d.Start(t)
	if got := resolve(t, d.Host+"/backups/ns/ws:latest"); got.String() != first.Digest {
		t.Fatalf("latest moved to %s after the failed backup, want %s", got, first.Digest)
	}
	retry := mustSucceed(t, Backup(ctx, backupOpts(d.Host, src, "20261127T020000Z")))
	if retry.Unchanged || retry.Digest == first.Digest {
		t.Fatalf("retry %+v did not back up the changed tree", retry)
	}
	if got := resolve(t, d.Host+"/backups/ns/ws:latest"); got.String() != retry.Digest {
		t.Fatalf("latest is %s after the retry, want %s", got, retry.Digest)
	}
	target := t.TempDir()
	mustSucceed(t, Restore(ctx, restoreOpts(retry.Reference, target)))
	compareTrees(t, snapshot(t, src), snapshot(t, target))
}

// Every replayable request of a backup answered once with 503 is retried:
// upload start, upload commit, config blob check and both manifest PUTs.
func TestBackupRetriesTransient5xx(t *testing.T) {
	seen := &sync503{}
	reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Method + " " + requestKind(r)
			if r.Method != http.MethodPatch && seen.first(key) {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	src := t.TempDir()
	makeTree(t, src)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
	for _, key := range []string{"POST uploads", "PUT uploads", "PUT manifest:20261126T020000Z", "PUT manifest:latest", "HEAD blob"} {
		if !seen.was(key) {
			t.Errorf("no %s request was failed: the test does not cover it", key)
		}
	}
	if got := resolve(t, reg.Host+"/backups/ns/ws:latest"); got.String() != res.Digest {
		t.Fatalf("latest %s, want %s", got, res.Digest)
	}
}

// sync503 remembers which kinds of request have been failed once.
type sync503 struct {
	mu   sync.Mutex
	keys map[string]bool
}

// first reports whether key is new, and records it.
func (s *sync503) first(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[key] {
		return false
	}
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.keys[key] = true
	return true
}

func (s *sync503) was(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

// requestKind names a registry request without its random parts. (The PATCH
// that streams the layer cannot be replayed, so the test never fails it.)
func requestKind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPatch:
		return "stream"
	case strings.Contains(p, "/blobs/uploads"):
		return "uploads"
	case strings.Contains(p, "/manifests/"):
		return "manifest:" + p[strings.LastIndex(p, "/")+1:]
	case strings.Contains(p, "/blobs/"):
		return "blob"
	}
	return p
}

// A restore into a full volume fails with WriteFailed and says so.
func TestRestoreDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	target := t.TempDir()
	if err := syscall.Mount("tmpfs", target, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a 1 MiB tmpfs here (%v): the disk-full restore is not tested", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(target, syscall.MNT_DETACH) })
	reg := registrytest.NewInProcess(t, nil)
	src := t.TempDir()
	writeRandomFiles(t, src, 3, 1<<20)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))

	got := Restore(context.Background(), restoreOpts(res.Reference, filepath.Join(target, "projects")))
	wantReason(t, got, ReasonWriteFailed)
	for _, want := range []string{"no space left on device", "rand/f0", "target volume is full"} {
		if !strings.Contains(got.Message, want) {
			t.Errorf("message %q does not say %q", got.Message, want)
		}
	}
}
