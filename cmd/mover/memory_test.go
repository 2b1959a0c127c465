package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover/movertest"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// maxPeakKiB is the mover's memory bar (docs/benchmarks.md): 100 MiB whatever the tree.
const maxPeakKiB = 100 << 10

// buildMover builds this command into a temporary directory.
func buildMover(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mover")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// sparseTree holds a 2 GiB sparse file (2 GiB of zeros to read and compress).
func sparseTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// manyFilesTree holds 200,000 small files in 200 directories, written by two
// workers. On the disk of a small VM (ext4, journal, discard) creating and
// removing them takes a minute, so as root they go on a private tmpfs (about
// 1 GiB of RAM while the test runs, freed at once by the unmount).
func manyFilesTree(t *testing.T) string {
	t.Helper()
	dir := fastTempDir(t)
	const dirs, perDir = 200, 1000
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			for d := w; d < dirs; d += 2 {
				if err := writeDir(filepath.Join(dir, fmt.Sprintf("d%03d", d)), perDir); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return dir
}

func fastTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2g,nr_inodes=300k"); err != nil {
		t.Logf("no tmpfs (%v): creating the files on disk, which can be slow", err)
		return dir
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func writeDir(dir string, n int) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := range n {
		name := filepath.Join(dir, fmt.Sprintf("file%04d.txt", i))
		if err := os.WriteFile(name, fmt.Appendf(nil, "file %s/%d\n", dir, i), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// The mover's memory does not grow with the size of a file or the number of
// files: its VmHWM stays under 100 MiB for both, backing up and restoring, in both formats.
func TestPeakMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the mover, backs up and restores 2 GiB and 200,000 files: not with -short")
	}
	bin := buildMover(t)
	reg := registrytest.NewInProcess(t, nil)
	tests := []struct {
		name   string
		tree   func(*testing.T) string
		target func(*testing.T) string // where the restore writes (the 2 GiB do not fit the tmpfs)
		files  int64
	}{
		{"2 GiB sparse file", sparseTree, tempDir, 1},
		{"200k small files", manyFilesTree, fastTempDir, 200_000},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.tree(t)
			for _, format := range []string{mover.FormatDWO, mover.FormatLayered} {
				repo := fmt.Sprintf("%s/mem/ns/ws%d-%s", reg.Host, i, format)
				backup := runMeasured(t, bin, tt.files, "backup", "--source", src, "--repository", repo,
					"--tag", "20261126T020000Z", "--workspace", "ws", "--namespace", "ns", "--insecure", "--format", format)
				runMeasured(t, bin, tt.files, "restore", "--target", filepath.Join(tt.target(t), "projects"),
					"--reference", backup.Reference, "--insecure")
			}
		})
	}
}

func tempDir(t *testing.T) string { return t.TempDir() }

// runMeasured runs the mover, which must succeed with files files and a peak RSS under the bar.
func runMeasured(t *testing.T, bin string, files int64, args ...string) mover.Result {
	t.Helper()
	m, err := movertest.Run(context.Background(), bin, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mover.DecodeResult(m.Result)
	if err != nil || m.ExitCode != 0 || res.Phase != mover.PhaseSucceeded || res.Files != files {
		t.Fatalf("%s: exit %d, result %+v (%v), want Succeeded with %d files", args[0], m.ExitCode, res, err, files)
	}
	t.Logf("%s: peak RSS %.1f MiB, %d files, %d bytes, %.1f CPU s",
		args[0], float64(m.PeakRSSKiB)/1024, res.Files, res.Bytes, m.CPUSeconds)
	if m.PeakRSSKiB <= 0 || m.PeakRSSKiB >= maxPeakKiB {
		t.Fatalf("%s: peak RSS %d KiB, want under %d KiB", args[0], m.PeakRSSKiB, maxPeakKiB)
	}
	return res
}
