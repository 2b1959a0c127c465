package mover

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// entry is one thing the walk found below the root.
type entry struct {
	path string // slash-separated, relative to the root
	info fs.FileInfo
	link string // symlink target
	// dirfd is the open directory that holds the entry as name; valid only while visit runs.
	dirfd int
	name  string
	// dirSeq numbers the directory visits of one walk: entries with the same
	// dirSeq share their dirfd (a descriptor number is reused once closed).
	dirSeq int
}

func (e entry) stat() *unix.Stat_t {
	st, _ := e.info.Sys().(*unix.Stat_t)
	return st
}

// walk visits every entry below the directory open as root (which it leaves
// open) depth-first in byte order of names, so the same tree always gives the
// same sequence. It only lstats: memory holds the sorted names of the
// directories on the current path, never the whole tree.
//
// Every lookup is relative to the descriptor of the open parent directory
// (fstatat, openat with O_NOFOLLOW), starting from root, which openSource
// opened without following a symlink (nofollow.go): the kernel resolves one
// name instead of the whole path, which halves the cost of a tree of many small
// files, and a directory swapped for a symlink while the walk runs is never followed.
func walk(ctx context.Context, root int, visit func(entry) error) error {
	// A fresh open of "." has its own directory offset: a second walk from the
	// same root (fingerprint, then archive) lists it from the start again.
	fd, err := openAt(root, ".", unix.O_DIRECTORY)
	if err != nil {
		return failf(ReasonUnreadableFile, "cannot read directory .: %w", err)
	}
	var seq int
	return walkDir(ctx, fd, "", &seq, visit)
}

// walkDir visits the directory open as fd and closes it.
func walkDir(ctx context.Context, fd int, rel string, seq *int, visit func(entry) error) error {
	*seq++
	dirSeq := *seq
	dir := os.NewFile(uintptr(fd), displayPath(rel))
	defer func() { _ = dir.Close() }()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return failf(ReasonUnreadableFile, "cannot read directory %s: %w", displayPath(rel), unwrapPathError(err))
	}
	slices.Sort(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := lstatAt(fd, n, path.Join(rel, n))
		if err != nil {
			return err
		}
		e.dirSeq = dirSeq
		if err := visit(e); err != nil {
			return err
		}
		if !e.info.IsDir() {
			continue
		}
		sub, err := openAt(fd, n, unix.O_DIRECTORY)
		if err != nil {
			return failf(ReasonUnreadableFile, "cannot read directory %s: %w", e.path, err)
		}
		if err := walkDir(ctx, sub, e.path, seq, visit); err != nil {
			return err
		}
	}
	return nil
}

func lstatAt(dirfd int, name, p string) (entry, error) {
	info := &statInfo{name: name}
	if err := ignoringEINTR(func() error { return unix.Fstatat(dirfd, name, &info.sys, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return entry{}, failf(ReasonUnreadableFile, "cannot stat %s: %w", p, err)
	}
	e := entry{path: p, info: info, dirfd: dirfd, name: name}
	if info.Mode()&fs.ModeSymlink != 0 {
		target, err := readlinkAt(dirfd, name, info.sys.Size)
		if err != nil {
			return entry{}, failf(ReasonUnreadableFile, "cannot read symlink %s: %w", p, err)
		}
		e.link = target
	}
	return e, nil
}

func readlinkAt(dirfd int, name string, size int64) (string, error) {
	for n := max(int(size)+1, 128); ; n *= 2 {
		buf := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
	}
}

// openAt opens name below dirfd read-only, never following a symlink.
func openAt(dirfd int, name string, flags int) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
		return err
	})
	return fd, err
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// fdFile reads a regular file through its descriptor, without the runtime
// poller and finalizer an *os.File sets up: most workspace files are small.
type fdFile int

func (f fdFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	err := ignoringEINTR(func() error {
		var err error
		n, err = unix.Read(int(f), p)
		return err
	})
	switch {
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (f fdFile) Close() error { return unix.Close(int(f)) }

// statInfo is the fs.FileInfo of an fstatat, with the same mode bits os.Lstat gives.
type statInfo struct {
	name string
	sys  unix.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.sys.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.sys.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.sys.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.sys }

func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.sys.Mode & 0o777)
	switch s.sys.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.sys.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.sys.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.sys.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// unwrapPathError drops the absolute path from an *fs.PathError: messages name
// the path relative to the workspace, which is what a person recognises.
func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok { //nolint:errorlint // only the outermost layer is replaced
		return pe.Err
	}
	return err
}

func displayPath(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
