package mover

import (
	"archive/tar"
	"path"
	"slices"
	"strings"
)

// maxEntryPath bounds an entry's path (Linux PATH_MAX).
const maxEntryPath = 4096

// entryGuard decides whether a tar entry may be extracted. It is pure: it sees
// only headers, and remembers the symlinks extracted so far, because the target
// starts empty and so holds nothing the archive did not put there.
type entryGuard struct {
	symlinks map[string]struct{}
}

func newEntryGuard() *entryGuard { return &entryGuard{symlinks: map[string]struct{}{}} }

// check returns the clean relative path to write hdr at ("." is the target
// itself), or an UnsafeEntry error: absolute paths, "..", paths through a
// symlink of the archive, and hard links that leave the archive are refused.
// Symlinks themselves are data and restored wherever they point.
func (g *entryGuard) check(hdr *tar.Header) (string, error) {
	name, err := cleanEntryPath(hdr.Name)
	if err != nil {
		return "", failf(ReasonUnsafeEntry, "entry %q: %w", shorten(hdr.Name), err)
	}
	if isSparse(hdr) {
		return "", failf(ReasonUnsafeEntry, "entry %q is a sparse file: its holes would be written out in full", shorten(hdr.Name))
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return "", failf(ReasonUnsafeEntry, "entry %q would replace the target directory", shorten(hdr.Name))
	}
	if p, through := g.throughSymlink(name); through {
		return "", failf(ReasonUnsafeEntry, "entry %q would be written through the symlink %q", shorten(hdr.Name), p)
	}
	if hdr.Typeflag == tar.TypeLink {
		target, err := cleanEntryPath(hdr.Linkname)
		if err == nil && (target == "." || target == name) {
			err = errString("hard link to itself or to the target directory")
		}
		if err != nil {
			return "", failf(ReasonUnsafeEntry, "hard link %q -> %q: %w", shorten(hdr.Name), shorten(hdr.Linkname), err)
		}
		if p, through := g.throughSymlink(target); through {
			return "", failf(ReasonUnsafeEntry, "hard link %q -> %q goes through the symlink %q", shorten(hdr.Name), shorten(hdr.Linkname), p)
		}
	}
	// An entry replaces whatever was at its path before; a hard link to a
	// symlink is one more name of that symlink.
	_, linksSymlink := g.symlinks[path.Clean(hdr.Linkname)]
	delete(g.symlinks, name)
	if hdr.Typeflag == tar.TypeSymlink || (hdr.Typeflag == tar.TypeLink && linksSymlink) {
		g.symlinks[name] = struct{}{}
	}
	return name, nil
}

// isSparse reports a PAX sparse file (GNU tar --sparse), which archive/tar reads with its holes
// filled: a few hundred bytes of archive can hold a terabyte of zeros. Neither this mover nor
// DWO's `tar -czf` writes one; old GNU sparse entries (type 'S') are skipped like devices.
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// throughSymlink reports the first strict parent of name that is an extracted symlink.
func (g *entryGuard) throughSymlink(name string) (string, bool) {
	if len(g.symlinks) == 0 {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			if _, ok := g.symlinks[name[:i]]; ok {
				return name[:i], true
			}
		}
	}
	return "", false
}

// cleanEntryPath validates an archive path and returns it cleaned and relative.
func cleanEntryPath(p string) (string, error) {
	switch {
	case p == "":
		return "", errString("empty path")
	case len(p) > maxEntryPath:
		return "", errString("path longer than 4096 bytes")
	case strings.ContainsRune(p, 0):
		return "", errString("path contains a NUL byte")
	case strings.HasPrefix(p, "/"):
		return "", errString("absolute path")
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", errString(`path contains ".."`)
	}
	return path.Clean(p), nil
}

type errString string

func (e errString) Error() string { return string(e) }

// shorten keeps messages small: a malicious name can be megabytes long.
func shorten(s string) string { return truncate(s, 200) }
