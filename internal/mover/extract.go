package mover

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirMeta is applied to a directory once all its entries are written: creating
// children changes its mtime, and a read-only mode would forbid them.
type dirMeta struct {
	name     string
	mode     fs.FileMode
	mtime    time.Time
	uid, gid int
}

// extractor writes tar entries below a target through an os.Root, so that even
// a bug in the guard cannot write outside the target.
type extractor struct {
	root    *os.Root
	dirfd   int // the same target directory, for what os.Root cannot do
	guard   *entryGuard
	asRoot  bool // restore ownership only when running as root
	dirs    []dirMeta
	lastDir string
	count   *counters
	buf     []byte
}

func newExtractor(root *os.Root, dirfd int, count *counters) *extractor {
	return &extractor{root: root, dirfd: dirfd, guard: newEntryGuard(), asRoot: os.Geteuid() == 0,
		count: count, buf: make([]byte, copyBufSize)}
}

// extract reads every entry of tr into the target.
func (x *extractor) extract(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return x.closeDirs("")
		}
		if err != nil {
			return failf(ReasonInvalidArchive, "read archive: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	name, err := x.guard.check(hdr)
	if err != nil {
		return err
	}
	if name == "." { // the target itself keeps its own mode and owner
		return nil
	}
	if err := x.closeDirs(name); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(name, hdr)
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // TypeRegA still appears in old archives
		return x.file(name, hdr, r)
	case tar.TypeSymlink:
		return x.symlink(name, hdr)
	case tar.TypeLink:
		return x.hardlink(name, hdr)
	default: // devices, FIFOs, global headers: not restored
		x.count.skipped.Add(1)
		return nil
	}
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	if err := x.parent(name); err != nil {
		return err
	}
	err := x.root.Mkdir(name, 0o700)
	if errors.Is(err, fs.ErrExist) {
		info, lerr := x.root.Lstat(name)
		if lerr != nil || !info.IsDir() {
			if err = x.replace(name); err == nil {
				err = x.root.Mkdir(name, 0o700)
			}
		} else {
			err = x.root.Chmod(name, 0o700)
		}
	}
	if err != nil {
		return x.writeErr(name, err)
	}
	x.dirs = append(x.dirs, dirMeta{name: name, mode: hdr.FileInfo().Mode(), mtime: hdr.ModTime, uid: hdr.Uid, gid: hdr.Gid})
	x.lastDir = name
	return nil
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader) error {
	if err := x.prepare(name); err != nil {
		return err
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return x.writeErr(name, err)
	}
	n, err := io.CopyBuffer(f, &countingReader{r: r, n: &x.count.bytes}, x.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if isReadError(err) {
			return failf(ReasonInvalidArchive, "read %s from the archive: %w", name, err)
		}
		return x.writeErr(name, err)
	}
	if n != hdr.Size {
		return failf(ReasonInvalidArchive, "%s: archive holds %d of %d bytes", name, n, hdr.Size)
	}
	x.count.files.Add(1)
	return x.finish(name, hdr, true)
}

func (x *extractor) symlink(name string, hdr *tar.Header) error {
	if err := x.prepare(name); err != nil {
		return err
	}
	if err := x.root.Symlink(hdr.Linkname, name); err != nil {
		return x.writeErr(name, err)
	}
	x.count.files.Add(1)
	if x.asRoot {
		if err := x.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return x.writeErr(name, err)
		}
	}
	// os.Root has no lutimes; the guard has checked that no parent is a symlink,
	// and the path is resolved from the target's descriptor, not its path.
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(x.dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return x.writeErr(name, err)
	}
	return nil
}

func (x *extractor) hardlink(name string, hdr *tar.Header) error {
	if err := x.prepare(name); err != nil {
		return err
	}
	if err := x.root.Link(path.Clean(hdr.Linkname), name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return failf(ReasonUnsafeEntry, "hard link %q -> %q: the target is not in the archive", name, shorten(hdr.Linkname))
		}
		return x.writeErr(name, err)
	}
	x.count.files.Add(1)
	return nil
}

// prepare makes the parent directory and removes what was at name before.
func (x *extractor) prepare(name string) error {
	if err := x.parent(name); err != nil {
		return err
	}
	if _, err := x.root.Lstat(name); err == nil {
		return x.replace(name)
	}
	return nil
}

// parent creates missing parent directories: some archives have no directory entries.
func (x *extractor) parent(name string) error {
	dir := path.Dir(name)
	if dir == "." || dir == x.lastDir {
		return nil
	}
	if err := x.root.MkdirAll(dir, 0o755); err != nil {
		return x.writeErr(dir, err)
	}
	x.lastDir = dir
	return nil
}

func (x *extractor) replace(name string) error {
	if err := x.root.Remove(name); err != nil {
		return x.writeErr(name, err)
	}
	return nil
}

// finish sets owner, mode and mtime of a file or directory.
func (x *extractor) finish(name string, hdr *tar.Header, isFile bool) error {
	if x.asRoot {
		if err := x.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return x.writeErr(name, err)
		}
	}
	if isFile {
		if err := x.root.Chmod(name, hdr.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return x.writeErr(name, err)
		}
	}
	if err := x.root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
		return x.writeErr(name, err)
	}
	return nil
}

// closeDirs applies the metadata of every open directory that is not an
// ancestor of next ("" closes all).
func (x *extractor) closeDirs(next string) error {
	for len(x.dirs) > 0 {
		top := x.dirs[len(x.dirs)-1]
		if next != "" && strings.HasPrefix(next, top.name+"/") {
			return nil
		}
		x.dirs = x.dirs[:len(x.dirs)-1]
		if x.asRoot {
			if err := x.root.Lchown(top.name, top.uid, top.gid); err != nil {
				return x.writeErr(top.name, err)
			}
		}
		mode := top.mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := x.root.Chmod(top.name, mode); err != nil {
			return x.writeErr(top.name, err)
		}
		if err := x.root.Chtimes(top.name, top.mtime, top.mtime); err != nil {
			return x.writeErr(top.name, err)
		}
	}
	return nil
}

func (x *extractor) writeErr(name string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// The most likely cause of a failed restore deserves words a person acts on.
		return failf(ReasonWriteFailed, "write %s: %w: the target volume is full after %d bytes in %d files",
			name, unwrapPathError(err), x.count.bytes.Load(), x.count.files.Load())
	}
	return failf(ReasonWriteFailed, "write %s: %w", name, unwrapPathError(err))
}
