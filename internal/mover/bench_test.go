package mover

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// benchTree writes a small workspace-like tree: source text in many small files
// and a few larger binaries, half of them incompressible. Returns its size.
func benchTree(b *testing.B, dir string) int64 {
	b.Helper()
	rnd := rand.New(rand.NewPCG(7, 7))
	var total int64
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	line := []byte("func example(ctx context.Context) error { return nil } // some source text\n")
	for i := range 2000 {
		n := 1 + rnd.IntN(60)
		data := make([]byte, 0, n*len(line))
		for range n {
			data = append(data, line...)
		}
		write(fmt.Sprintf("src/pkg%02d/sub%d/file%04d.go", i%40, i%7, i), data)
	}
	for i := range 8 {
		data := make([]byte, 2<<20)
		for j := range data {
			if i%2 == 0 {
				data[j] = byte(rnd.Uint32())
			} else {
				data[j] = byte('a' + j%13)
			}
		}
		write(fmt.Sprintf("bin/blob%d.bin", i), data)
	}
	return total
}

// BenchmarkBackup is a full first backup into the in-process registry.
func BenchmarkBackup(b *testing.B) {
	reg := registrytest.NewInProcess(b, nil)
	src := b.TempDir()
	b.SetBytes(benchTree(b, src))
	b.ResetTimer()
	for i := range b.N {
		o := backupOpts(reg.Host, src, "20261126T020000Z")
		o.Repository = fmt.Sprintf("%s/bench/ns/ws%d", reg.Host, i) // a new repository: never unchanged
		mustSucceed(b, Backup(context.Background(), o))
	}
}

// BenchmarkBackupUnchanged is the lstat-only shortcut of a second backup.
func BenchmarkBackupUnchanged(b *testing.B) {
	reg := registrytest.NewInProcess(b, nil)
	src := b.TempDir()
	benchTree(b, src)
	mustSucceed(b, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
	b.ResetTimer()
	for i := range b.N {
		res := mustSucceed(b, Backup(context.Background(), backupOpts(reg.Host, src, fmt.Sprintf("20261127T0200%02dZ", i%60))))
		if !res.Unchanged {
			b.Fatal("not unchanged")
		}
	}
}
