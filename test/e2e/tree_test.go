//go:build e2e || olm

package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// DWO's default pod security context on Kubernetes (runAsUser 1234, runAsGroup 0: docs/architecture.md,
// "DevWorkspaces") is the mover's user. hostPath volumes ignore fsGroup (docs/local-cluster.md), so
// fixture files must already belong to it.
const (
	moverUID = 1234
	moverGID = 0
)

// entry is what a backup must preserve of one file-tree entry: type and permission bits, size and
// content hash of regular files, target of symlinks.
type entry struct {
	Mode   fs.FileMode
	Size   int64
	SHA256 string
	Link   string
}

func (e entry) String() string {
	return fmt.Sprintf("%v size=%d sha256=%.12s link=%q", e.Mode, e.Size, e.SHA256, e.Link)
}

// snapshot describes every entry under dir (not dir itself), keyed by its slash path.
func snapshot(dir string) map[string]entry {
	GinkgoHelper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: info.Mode()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.Link, err = os.Readlink(path)
		case info.Mode().IsRegular():
			e.Size = info.Size()
			e.SHA256, err = fileSHA256(path)
		}
		out[filepath.ToSlash(rel)] = e
		return err
	})
	Expect(err).NotTo(HaveOccurred())
	return out
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeSampleTree writes a small but varied workspace: nested directories, an empty directory, an
// empty file, a name with spaces, an executable, a private file, relative and absolute (dangling)
// symlinks and some incompressible bytes. seed makes trees of different workspaces differ.
func writeSampleTree(dir, seed string) {
	GinkgoHelper()
	files := []struct {
		path string
		mode fs.FileMode
		data string
	}{
		{"README.md", 0o644, "# " + seed + "\n\nA workspace backed up by the e2e suite.\n"},
		{"app/src/main.go", 0o644, "package main\n\nfunc main() { println(\"" + seed + "\") }\n"},
		{"app/build.sh", 0o755, "#!/bin/sh\ngo build ./...\n"},
		{"app/.env", 0o600, "TOKEN=" + seed + "\n"},
		{".git/HEAD", 0o644, "ref: refs/heads/main\n"},
		{"docs/empty file.txt", 0o644, ""},
	}
	for _, f := range files {
		writeFile(filepath.Join(dir, f.path), f.mode, []byte(f.data))
	}
	writeRandomFile(filepath.Join(dir, "docs", "blob.bin"), 64<<10)
	Expect(os.MkdirAll(filepath.Join(dir, "docs", "empty-dir"), 0o755)).To(Succeed())
	Expect(os.Symlink("../README.md", filepath.Join(dir, "app", "README-link.md"))).To(Succeed())
	Expect(os.Symlink("/projects/elsewhere", filepath.Join(dir, "absolute-link"))).To(Succeed())
}

// writeFile writes data with mode (set explicitly: the umask must not decide the fixture).
func writeFile(path string, mode fs.FileMode, data []byte) {
	GinkgoHelper()
	Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
	Expect(os.WriteFile(path, data, mode)).To(Succeed())
	Expect(os.Chmod(path, mode)).To(Succeed())
}

// writeRandomFile writes size incompressible bytes.
func writeRandomFile(path string, size int64) {
	GinkgoHelper()
	Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	Expect(err).NotTo(HaveOccurred())
	_, err = io.CopyN(f, rand.Reader, size)
	Expect(err).NotTo(HaveOccurred())
	Expect(f.Close()).To(Succeed())
}

// chownTree gives dir and everything under it to the mover's user (symlinks themselves, not
// their targets).
func chownTree(dir string) {
	GinkgoHelper()
	Expect(filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, moverUID, moverGID)
	})).To(Succeed())
}

// emptyDir removes every entry of dir, keeping dir itself.
func emptyDir(dir string) {
	GinkgoHelper()
	entries, err := os.ReadDir(dir)
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		Expect(os.RemoveAll(filepath.Join(dir, e.Name()))).To(Succeed())
	}
}
