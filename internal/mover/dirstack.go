package mover

import (
	"errors"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirStack holds the directories open along the path of the last extracted
// entry, from the target down. An archive lists a directory's entries
// together (ours depth-first in byte order, GNU tar's in readdir order), so
// the next entry's parent is almost always on the stack: one system call
// creates it, instead of the ~30 with which os.Root resolved every path again
// (make bench-mover, docs/benchmarks.md). Entries in any other order only close
// more of the stack and reopen from the deepest ancestor left.
//
// The guarantee: every directory on the stack was opened from the one below
// it, by a single name and with O_NOFOLLOW, starting at the target's
// descriptor; component refuses names with a slash, "." and "..". So no
// symlink is followed and nothing outside the target is reachable, even if
// the entry guard (safety.go) had a bug.
type dirStack struct {
	dirs []openDir // dirs[0] is the target, owned by restoreTarget
	// leave applies a directory's metadata when it is left, before its descriptor is closed.
	leave func(d openDir) error
}

// openDir is one open directory of the stack.
type openDir struct {
	path string // relative to the target, "" for the target itself
	fd   int
	meta *dirMeta // from the archive's entry for it; nil for a directory made only as a parent
}

// dirMeta is applied to a directory once all its entries are written: creating
// children changes its mtime, and a read-only mode would forbid them.
type dirMeta struct {
	mode     uint32
	mtime    time.Time
	uid, gid int
}

func newDirStack(target int, leave func(openDir) error) *dirStack {
	return &dirStack{dirs: []openDir{{fd: target}}, leave: leave}
}

// at returns the descriptor of the directory dir ("" or "." is the target),
// leaving every open directory that is not dir or one of its ancestors and
// opening the missing components; create makes the missing ones (mode 0755,
// as archives without directory entries need), else they give ENOENT.
func (s *dirStack) at(dir string, create bool) (int, error) {
	if dir == "." {
		dir = ""
	}
	if err := s.leaveTo(dir); err != nil {
		return -1, err
	}
	top := s.dirs[len(s.dirs)-1]
	rest := strings.TrimPrefix(strings.TrimPrefix(dir, top.path), "/")
	for rest != "" {
		name, tail, _ := strings.Cut(rest, "/")
		fd, err := openChildDir(top.fd, name, create)
		if err != nil {
			return -1, err
		}
		top = openDir{path: joinRel(top.path, name), fd: fd}
		s.dirs = append(s.dirs, top)
		rest = tail
	}
	return top.fd, nil
}

// push adds the directory name just opened in the stack's top directory.
func (s *dirStack) push(name string, fd int, meta *dirMeta) {
	s.dirs = append(s.dirs, openDir{path: joinRel(s.dirs[len(s.dirs)-1].path, name), fd: fd, meta: meta})
}

// leaveTo leaves the directories that are neither dir nor its ancestors,
// deepest first ("" leaves all but the target).
func (s *dirStack) leaveTo(dir string) error {
	for len(s.dirs) > 1 {
		top := s.dirs[len(s.dirs)-1]
		if dir == top.path || strings.HasPrefix(dir, top.path+"/") {
			return nil
		}
		s.dirs = s.dirs[:len(s.dirs)-1]
		err := s.leave(top)
		if cerr := unix.Close(top.fd); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// close closes what is open without applying metadata (the restore failed).
func (s *dirStack) close() {
	for _, d := range s.dirs[1:] {
		_ = unix.Close(d.fd)
	}
	s.dirs = s.dirs[:1]
}

// lookup opens the existing directory dir for a hard link's source without
// changing the stack: from the deepest open ancestor, one O_NOFOLLOW component at a time.
// The caller closes the descriptor when owned is true.
func (s *dirStack) lookup(dir string) (fd int, owned bool, err error) {
	if dir == "." {
		dir = ""
	}
	i := len(s.dirs) - 1
	for ; i > 0; i-- {
		if p := s.dirs[i].path; dir == p || strings.HasPrefix(dir, p+"/") {
			break
		}
	}
	fd = s.dirs[i].fd
	rest := strings.TrimPrefix(strings.TrimPrefix(dir, s.dirs[i].path), "/")
	for rest != "" {
		name, tail, _ := strings.Cut(rest, "/")
		next, err := openChildDir(fd, name, false)
		if owned {
			_ = unix.Close(fd)
		}
		if err != nil {
			return -1, false, err
		}
		fd, owned, rest = next, true, tail
	}
	return fd, owned, nil
}

// openChildDir opens (creating it first when asked) the directory name below
// dirfd, never following a symlink: O_DIRECTORY|O_NOFOLLOW fails on one.
func openChildDir(dirfd int, name string, create bool) (int, error) {
	if err := component(name); err != nil {
		return -1, err
	}
	fd, err := openAt(dirfd, name, unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) && create {
		if err = unix.Mkdirat(dirfd, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
			fd, err = openAt(dirfd, name, unix.O_DIRECTORY)
		}
	}
	return fd, err
}

// component checks that name is one path element: the *at calls below resolve
// nothing else, so nothing is reached that is not in the directory they are given.
func component(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return errString("not a single path element: " + shorten(name))
	}
	return nil
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// timespecs are the atime and mtime a restored entry gets: both the archive's
// mtime, as os.Chtimes did (a zero time leaves the time as it is).
func timespecs(t time.Time) [2]unix.Timespec {
	ts := unix.Timespec{Nsec: unix.UTIME_OMIT}
	if !t.IsZero() {
		ts = unix.NsecToTimespec(t.UnixNano())
	}
	return [2]unix.Timespec{ts, ts}
}

// futimens sets the times of the open file fd: utimensat with a NULL path, as
// the C library's futimens does (x/sys/unix has no futimens, and its Futimes
// goes through /proc).
func futimens(fd int, t time.Time) error {
	ts := timespecs(t)
	return ignoringEINTR(func() error {
		_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if errno != 0 {
			return errno
		}
		return nil
	})
}

// utimesAt sets the times of name below dirfd without following a symlink.
func utimesAt(dirfd int, name string, t time.Time) error {
	ts := timespecs(t)
	return unix.UtimesNanoAt(dirfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}
