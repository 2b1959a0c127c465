package mover

import (
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
)

// entry is one thing the walk found below the root.
type entry struct {
	path string // slash-separated, relative to the root
	info fs.FileInfo
	link string // symlink target
}

func (e entry) stat() *syscall.Stat_t {
	st, _ := e.info.Sys().(*syscall.Stat_t)
	return st
}

// walk visits every entry below root depth-first in byte order of names, so the
// same tree always gives the same sequence. It only lstats: memory holds the
// sorted names of the directories on the current path, never the whole tree.
func walk(ctx context.Context, root string, visit func(entry) error) error {
	return walkDir(ctx, root, "", visit)
}

func walkDir(ctx context.Context, root, rel string, visit func(entry) error) error {
	names, err := readDirNames(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return failf(ReasonUnreadableFile, "cannot read directory %s: %w", displayPath(rel), unwrapPathError(err))
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(rel, n)
		e, err := lstatEntry(root, p)
		if err != nil {
			return err
		}
		if err := visit(e); err != nil {
			return err
		}
		if e.info.IsDir() {
			if err := walkDir(ctx, root, p, visit); err != nil {
				return err
			}
		}
	}
	return nil
}

func lstatEntry(root, p string) (entry, error) {
	full := filepath.Join(root, filepath.FromSlash(p))
	info, err := os.Lstat(full)
	if err != nil {
		return entry{}, failf(ReasonUnreadableFile, "cannot stat %s: %w", p, unwrapPathError(err))
	}
	e := entry{path: p, info: info}
	if info.Mode()&fs.ModeSymlink != 0 {
		if e.link, err = os.Readlink(full); err != nil {
			return entry{}, failf(ReasonUnreadableFile, "cannot read symlink %s: %w", p, unwrapPathError(err))
		}
	}
	return e, nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
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
