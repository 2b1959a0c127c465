package mover

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The walk's fstatat must describe entries exactly as os.Lstat does: the tree
// fingerprint is built from these fields, and a difference would turn every
// unchanged workspace into a full backup after an upgrade.
func TestLstatAtMatchesOsLstat(t *testing.T) {
	dir := t.TempDir()
	longTarget := strings.Repeat("long/", 60) + "target"
	for _, step := range []func() error{
		func() error { return os.WriteFile(filepath.Join(dir, "file"), []byte("hello"), 0o640) },
		func() error { return os.WriteFile(filepath.Join(dir, "setid"), nil, 0o755) },
		func() error { return os.Chmod(filepath.Join(dir, "setid"), 0o755|os.ModeSetuid|os.ModeSetgid) },
		func() error { return os.Mkdir(filepath.Join(dir, "sticky"), 0o777) },
		func() error { return os.Chmod(filepath.Join(dir, "sticky"), 0o777|os.ModeSticky) },
		func() error { return os.Mkdir(filepath.Join(dir, "plain-dir"), 0o700) },
		func() error { return os.Symlink("file", filepath.Join(dir, "link")) },
		func() error { return os.Symlink(longTarget, filepath.Join(dir, "long-link")) },
		func() error { return unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	for _, name := range []string{"file", "setid", "sticky", "plain-dir", "link", "long-link", "fifo"} {
		t.Run(name, func(t *testing.T) {
			want, err := os.Lstat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			e, err := lstatAt(fd, name, name)
			if err != nil {
				t.Fatal(err)
			}
			got := e.info
			if got.Mode() != want.Mode() || got.Size() != want.Size() || got.IsDir() != want.IsDir() ||
				!got.ModTime().Equal(want.ModTime()) || got.Name() != want.Name() {
				t.Errorf("fstatat gives %v %d %v %v %q, os.Lstat %v %d %v %v %q", got.Mode(), got.Size(), got.IsDir(),
					got.ModTime(), got.Name(), want.Mode(), want.Size(), want.IsDir(), want.ModTime(), want.Name())
			}
			if target, _ := os.Readlink(filepath.Join(dir, name)); e.link != target {
				t.Errorf("link target %q, want %q", e.link, target)
			}
		})
	}
}

func TestOpenAtNeverFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"to-dir": "d", "to-file": "f"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	for _, tc := range []struct {
		name  string
		flags int
	}{{"to-dir", unix.O_DIRECTORY}, {"to-file", 0}} {
		if sub, err := openAt(fd, tc.name, tc.flags); err == nil {
			_ = unix.Close(sub)
			t.Errorf("openAt followed the symlink %s", tc.name)
		}
	}
}

// A directory replaced by a symlink between its lstat and its descent (a
// workspace that is still being written to) fails the walk; the walk never
// lists what the symlink points at.
func TestWalkRefusesDirectorySwappedForSymlink(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	var seen []string
	err := walkPath(t, root, func(e entry) error {
		seen = append(seen, e.path)
		if e.path == "d" {
			if err := os.Remove(filepath.Join(root, "d")); err != nil {
				return err
			}
			return os.Symlink(outside, filepath.Join(root, "d"))
		}
		return nil
	})
	if reasonOf(err) != ReasonUnreadableFile || !strings.Contains(err.Error(), "directory d") {
		t.Fatalf("walk error %v, want %s naming directory d", err, ReasonUnreadableFile)
	}
	for _, p := range seen {
		if strings.Contains(p, "secret") {
			t.Fatalf("the walk followed the swapped symlink: %v", seen)
		}
	}
}
