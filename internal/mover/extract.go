package mover

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"syscall"

	"golang.org/x/sys/unix"
)

// extractor writes tar entries below the target directory, every one relative
// to its open parent directory (dirstack.go): a file takes openat, its writes,
// fchmod, futimens and close, where os.Root resolved the whole path for each
// step. File data is written by a fileWriter (filewriter.go).
type extractor struct {
	dirs   *dirStack
	w      *fileWriter
	guard  *entryGuard
	asRoot bool // restore ownership only when running as root
	count  *counters
}

func newExtractor(target int, count *counters) *extractor {
	x := &extractor{guard: newEntryGuard(), asRoot: os.Geteuid() == 0, count: count, w: newFileWriter(count)}
	x.dirs = newDirStack(target, x.leaveDir)
	return x
}

// extract reads every entry of tr into the target. A failure of the file
// writer wins: it happened to an earlier entry than the extractor's own.
func (x *extractor) extract(ctx context.Context, tr *tar.Reader) error {
	err := x.entries(ctx, tr)
	x.dirs.close()
	if f := x.w.wait(); f != nil {
		return x.writeErr(f.name, f.err)
	}
	return err
}

func (x *extractor) entries(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if x.w.failed() != nil {
			return nil // reported by extract
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return x.dirs.leaveTo("")
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

// parent returns the open parent directory of name, created if missing (some
// archives have no directory entries), and name's last element.
func (x *extractor) parent(name string) (int, string, error) {
	dir, base := path.Split(name)
	fd, err := x.dirs.at(path.Clean(dir), true)
	if err != nil {
		return -1, "", x.writeErr(path.Clean(dir), err)
	}
	if err := component(base); err != nil {
		return -1, "", failf(ReasonUnsafeEntry, "entry %q: %w", shorten(name), err)
	}
	return fd, base, nil
}

// dir creates the directory, writable for its entries until it is left; its
// own mode, owner and mtime are applied then (leaveDir). It stays open: its
// entries most likely follow.
func (x *extractor) dir(name string, hdr *tar.Header) error {
	parent, base, err := x.parent(name)
	if err != nil {
		return err
	}
	err = unix.Mkdirat(parent, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		fd, oerr := openAt(parent, base, unix.O_DIRECTORY)
		switch {
		case oerr == nil: // declared twice, or made as a parent before its entry
			if err = unix.Fchmod(fd, 0o700); err != nil {
				_ = unix.Close(fd)
				return x.writeErr(name, err)
			}
			x.dirs.push(base, fd, x.meta(hdr))
			return nil
		case errors.Is(oerr, unix.ENOTDIR) || errors.Is(oerr, unix.ELOOP):
			// A file or symlink of the archive (O_NOFOLLOW): replaced.
			if err = x.remove(parent, base); err == nil {
				err = unix.Mkdirat(parent, base, 0o700)
			}
		default:
			err = oerr
		}
	}
	if err != nil {
		return x.writeErr(name, err)
	}
	fd, err := openAt(parent, base, unix.O_DIRECTORY)
	if err != nil {
		return x.writeErr(name, err)
	}
	x.dirs.push(base, fd, x.meta(hdr))
	return nil
}

func (x *extractor) meta(hdr *tar.Header) *dirMeta {
	return &dirMeta{mode: fileMode(hdr), mtime: hdr.ModTime, uid: hdr.Uid, gid: hdr.Gid}
}

// leaveDir applies a directory's owner, mode and mtime once its entries are written.
func (x *extractor) leaveDir(d openDir) error {
	if d.meta == nil {
		return nil
	}
	if x.asRoot {
		if err := unix.Fchown(d.fd, d.meta.uid, d.meta.gid); err != nil {
			return x.writeErr(d.path, err)
		}
	}
	if err := unix.Fchmod(d.fd, d.meta.mode); err != nil {
		return x.writeErr(d.path, err)
	}
	if err := futimens(d.fd, d.meta.mtime); err != nil {
		return x.writeErr(d.path, err)
	}
	return nil
}

// file creates the file (O_EXCL|O_NOFOLLOW: what was there before is removed
// first, never written through) and queues its data, owner, mode and mtime
// for the file writer, which closes it.
func (x *extractor) file(name string, hdr *tar.Header, r io.Reader) error {
	parent, base, err := x.parent(name)
	if err != nil {
		return err
	}
	fd, err := x.create(parent, base, func() (int, error) {
		return openCreate(parent, base)
	})
	if err != nil {
		return x.writeErr(name, err)
	}
	fin := &fileFinish{chown: x.asRoot, uid: hdr.Uid, gid: hdr.Gid, mode: fileMode(hdr), mtime: hdr.ModTime}
	for remaining := hdr.Size; ; {
		data, release := x.w.ring.alloc(int(min(remaining, writeChunk)))
		n, rerr := fill(r, data)
		remaining -= int64(n)
		op := writeOp{fd: fd, name: name, data: data[:n], release: release, last: remaining == 0 || n < len(data)}
		if n == len(data) {
			rerr = nil // the entry's end is hdr.Size; the reader need not have said EOF yet
		} else if rerr == nil || errors.Is(rerr, io.EOF) {
			rerr = failf(ReasonInvalidArchive, "%s: archive holds %d of %d bytes", name, hdr.Size-remaining, hdr.Size)
		} else {
			rerr = failf(ReasonInvalidArchive, "read %s from the archive: %w", name, rerr)
		}
		if op.last && rerr == nil {
			op.finish = fin
		}
		x.w.send(op)
		if op.last {
			return rerr
		}
	}
}

func openCreate(dirfd int, name string) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	return fd, err
}

// fill reads into buf until it is full or r ends (io.EOF) or fails.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// fileMode is the permission bits and setuid, setgid and sticky of an entry.
func fileMode(hdr *tar.Header) uint32 { return uint32(hdr.Mode & 0o7777) }

func (x *extractor) symlink(name string, hdr *tar.Header) error {
	parent, base, err := x.parent(name)
	if err != nil {
		return err
	}
	if _, err := x.create(parent, base, func() (int, error) {
		return -1, unix.Symlinkat(hdr.Linkname, parent, base)
	}); err != nil {
		return x.writeErr(name, err)
	}
	x.count.files.Add(1)
	if x.asRoot {
		if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return x.writeErr(name, err)
		}
	}
	if err := utimesAt(parent, base, hdr.ModTime); err != nil {
		return x.writeErr(name, err)
	}
	return nil
}

// hardlink links name to an entry already extracted; the guard has checked
// that its path is inside the archive and through no symlink, and it is looked
// up from the target one O_NOFOLLOW component at a time.
func (x *extractor) hardlink(name string, hdr *tar.Header) error {
	parent, base, err := x.parent(name)
	if err != nil {
		return err
	}
	notInArchive := func() error {
		return failf(ReasonUnsafeEntry, "hard link %q -> %q: the target is not in the archive", name, shorten(hdr.Linkname))
	}
	oldDir, oldBase := path.Split(path.Clean(hdr.Linkname))
	if component(oldBase) != nil {
		return notInArchive()
	}
	oldfd, owned, err := x.dirs.lookup(path.Clean(oldDir))
	if errors.Is(err, unix.ENOENT) {
		return notInArchive()
	}
	if err != nil {
		return x.writeErr(name, err)
	}
	if owned {
		defer func() { _ = unix.Close(oldfd) }()
	}
	_, err = x.create(parent, base, func() (int, error) {
		return -1, unix.Linkat(oldfd, oldBase, parent, base, 0)
	})
	if errors.Is(err, unix.ENOENT) {
		return notInArchive()
	}
	if err != nil {
		return x.writeErr(name, err)
	}
	x.count.files.Add(1)
	return nil
}

// create runs mk, which makes name below parent, and when name exists already
// (the archive lists a path twice) removes it and runs mk once more.
func (x *extractor) create(parent int, name string, mk func() (int, error)) (int, error) {
	fd, err := mk()
	if errors.Is(err, unix.EEXIST) {
		if err = x.remove(parent, name); err == nil {
			fd, err = mk()
		}
	}
	return fd, err
}

// remove deletes name below parent: a file, a symlink or an empty directory.
func (x *extractor) remove(parent int, name string) error {
	err := unix.Unlinkat(parent, name, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
	}
	return err
}

func (x *extractor) writeErr(name string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// The most likely cause of a failed restore deserves words a person acts on.
		return failf(ReasonWriteFailed, "write %s: %w: the target volume is full after %d bytes in %d files",
			name, unwrapPathError(err), x.count.bytes.Load(), x.count.files.Load())
	}
	return failf(ReasonWriteFailed, "write %s: %w", name, unwrapPathError(err))
}
