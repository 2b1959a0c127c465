package mover

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// --source and --target lie in the workspace's volume, whose content the
// workspace's user controls: a symlink there (projects -> /credentials) would
// make the mover back up its own credentials or restore over them. So both are
// opened without following any symlink along the path, and the mover then
// works only relative to that descriptor, never resolving the path again.

// openat2 is unix.Openat2; tests replace it to run the fallback.
var openat2 = unix.Openat2

// openDirNoSymlinks opens the directory at the absolute path p read-only
// without following a symlink in any component, the last one included: a
// symlink gives ELOOP, a missing component ENOENT, a file ENOTDIR.
func openDirNoSymlinks(p string) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = openat2(unix.AT_FDCWD, p, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		return err
	})
	// Kernels before 5.6 lack openat2; seccomp profiles older than it deny it
	// with ENOSYS, or EPERM (Docker before 20.10). The fallback gives the same answers.
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		fd, err = openDirByComponents(p)
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

// openDirByComponents opens p one component at a time from "/", each relative
// to the previous one (see dirStepAt); only the last one needs read permission,
// as in a normal lookup.
func openDirByComponents(p string) (int, error) {
	fd, err := openAt(unix.AT_FDCWD, "/", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	for _, name := range pathComponents(p) {
		next, err := dirStepAt(fd, name)
		_ = unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return reopenDir(fd)
}

// dirStepAt opens the directory name below dirfd as O_PATH with O_NOFOLLOW
// and checks its type through the new descriptor, so nothing can be swapped in
// between: a symlink gives ELOOP, anything else but a directory ENOTDIR
// (O_DIRECTORY|O_NOFOLLOW alone answers ENOTDIR for a symlink).
func dirStepAt(dirfd int, name string) (int, error) {
	fd, err := openAt(dirfd, name, unix.O_PATH)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	switch {
	case err != nil:
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		err = unix.ELOOP
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		err = unix.ENOTDIR
	}
	if err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// reopenDir opens the directory of an O_PATH descriptor for reading and closes the latter.
func reopenDir(pathfd int) (int, error) {
	fd, err := openAt(pathfd, ".", unix.O_DIRECTORY)
	_ = unix.Close(pathfd)
	return fd, err
}

// pathComponents are the names of p to look up, without empty and "." ones.
func pathComponents(p string) []string {
	var out []string
	for n := range strings.SplitSeq(p, "/") {
		if n != "" && n != "." {
			out = append(out, n)
		}
	}
	return out
}

// isSymlinkErr reports the error a symlink along the path gives.
func isSymlinkErr(err error) bool { return errors.Is(err, unix.ELOOP) }

// openSource opens --source for the backup walk. A source that does not exist
// is not an error (the backup is Skipped); a symlink along it is UnsafeSource.
func openSource(src string) (fd int, exists bool, err error) {
	if !filepath.IsAbs(src) {
		return -1, false, failf(ReasonInvalidArguments, "--source %s must be an absolute path", src)
	}
	fd, err = openDirNoSymlinks(filepath.Clean(src))
	switch {
	case err == nil:
		return fd, true, nil
	case isSymlinkErr(err):
		return -1, false, failf(ReasonUnsafeSource, "--source %s: a symlink was found along the path, and the mover follows none", src)
	case errors.Is(err, unix.ENOENT):
		return -1, false, nil
	case errors.Is(err, unix.ENOTDIR):
		return -1, false, failf(ReasonInvalidArguments, "--source %s is not a directory", src)
	}
	return -1, false, failf(ReasonUnreadableFile, "cannot open --source: %w", err)
}

// restoreTarget is --target opened without following a symlink: the directory
// itself, or, while it does not exist, its deepest existing ancestor and the
// names to create below it. Opening it writes nothing; prepare creates or empties it.
type restoreTarget struct {
	path    string
	fd      int      // the target directory, -1 until it exists
	parent  int      // the deepest existing ancestor while the target is missing, else -1
	missing []string // the components to create below parent, the target's name last
}

// openTarget opens --target, or, when it does not exist, its deepest existing
// ancestor (DWO's common storage: <claim>/<workspace id>/projects, where the
// workspace id directory may not exist yet); a symlink anywhere along either is UnsafeTarget.
func openTarget(target string) (*restoreTarget, error) {
	if !filepath.IsAbs(target) {
		return nil, failf(ReasonInvalidArguments, "--target %s must be an absolute path", target)
	}
	t := &restoreTarget{path: target, fd: -1, parent: -1}
	for dir := filepath.Clean(target); ; dir = filepath.Dir(dir) {
		fd, err := openDirNoSymlinks(dir)
		switch {
		case err == nil && t.missing == nil:
			t.fd = fd
			return t, nil
		case err == nil:
			t.parent = fd
			return t, nil
		case !errors.Is(err, unix.ENOENT) || dir == "/":
			return nil, t.openErr(err)
		}
		t.missing = append([]string{filepath.Base(dir)}, t.missing...)
	}
}

func (t *restoreTarget) openErr(err error) error {
	switch {
	case isSymlinkErr(err):
		return failf(ReasonUnsafeTarget, "--target %s: a symlink was found along the path, and the mover follows none", t.path)
	case errors.Is(err, unix.ENOTDIR):
		return failf(ReasonInvalidArguments, "--target %s is not a directory", t.path)
	}
	return failf(ReasonWriteFailed, "open --target: %w", err)
}

// prepare creates the missing target and its missing parents (mkdirat in the
// directory opened before, each opened in turn without following a symlink),
// or makes sure it is empty, or empties it when overwrite is set. The target
// directory itself is kept (it may be a mount), and its entries are removed
// through its descriptor, so a path swapped after openTarget is never followed.
func (t *restoreTarget) prepare(overwrite bool) error {
	if t.fd < 0 {
		if err := t.create(); err != nil {
			return err
		}
	}
	names, err := dirNamesAt(t.fd)
	if err != nil {
		return failf(ReasonWriteFailed, "read --target %s: %w", t.path, err)
	}
	if len(names) > 0 && !overwrite {
		return failf(ReasonTargetNotEmpty, "target %s holds %d entries; restore with overwrite to replace them", t.path, len(names))
	}
	if len(names) == 0 {
		return nil
	}
	root, err := rootAt(t.fd)
	if err != nil {
		return failf(ReasonWriteFailed, "open --target %s: %w", t.path, err)
	}
	defer func() { _ = root.Close() }()
	for _, n := range names {
		if err := root.RemoveAll(n); err != nil {
			return failf(ReasonWriteFailed, "empty target: %w", err)
		}
	}
	return nil
}

// create makes t.missing one below the other from t.parent and opens the last.
func (t *restoreTarget) create() error {
	fd := t.parent
	for _, name := range t.missing {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			t.closeIntermediate(fd)
			return failf(ReasonWriteFailed, "create --target %s: %w", t.path, err)
		}
		// EEXIST: created meanwhile by someone else; opened and checked like any directory.
		next, err := dirStepAt(fd, name)
		if err == nil {
			next, err = reopenDir(next)
		}
		t.closeIntermediate(fd)
		if err != nil {
			return t.openErr(err)
		}
		fd = next
	}
	t.fd = fd
	return nil
}

// closeIntermediate closes a descriptor create opened on the way down (not t.parent).
func (t *restoreTarget) closeIntermediate(fd int) {
	if fd != t.parent {
		_ = unix.Close(fd)
	}
}

func (t *restoreTarget) close() {
	for _, fd := range []int{t.fd, t.parent} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
	t.fd, t.parent = -1, -1
}

// rootAt returns an os.Root on the directory open as fd. os.Root opens only
// paths, so it opens the descriptor's /proc magic link, which names that very
// directory and not a path that could be swapped; the device and inode are
// compared anyway, in case /proc is not the kernel's.
func rootAt(fd int) (*os.Root, error) {
	root, err := os.OpenRoot(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return nil, err
	}
	var want unix.Stat_t
	info, err := root.Stat(".")
	if err == nil {
		err = unix.Fstat(fd, &want)
	}
	if err != nil {
		_ = root.Close()
		return nil, err
	}
	if got, ok := info.Sys().(*syscall.Stat_t); !ok || got.Dev != want.Dev || got.Ino != want.Ino {
		_ = root.Close()
		return nil, errors.New("/proc/self/fd does not lead to the opened directory")
	}
	return root, nil
}

// dirNamesAt lists the directory open as fd through a fresh open of ".":
// reading the directory through fd itself would move fd's offset for later readers.
func dirNamesAt(fd int) ([]string, error) {
	dup, err := openAt(fd, ".", unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer func() { _ = f.Close() }()
	return f.Readdirnames(-1)
}
