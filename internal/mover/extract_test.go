package mover

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// ent is one archive entry of an extraction test.
type ent struct {
	name string
	typ  byte
	mode int64
	data string // file content, or the link target
}

func dirEnt(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
func fileEnt(name, data string) ent {
	return ent{name: name, typ: tar.TypeReg, mode: 0o644, data: data}
}

func tarOfEntries(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, ModTime: treeTime}
		switch e.typ {
		case tar.TypeReg:
			hdr.Size = int64(len(e.data))
		case tar.TypeSymlink, tar.TypeLink:
			hdr.Linkname = e.data
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// describe lists what is below dir as "d MODE", "f MODE DATA" or "l TARGET",
// and groups the names of each inode with more than one.
func describe(t testing.TB, dir string) (map[string]string, map[uint64][]string) {
	t.Helper()
	out, inodes := map[string]string{}, map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		switch {
		case info.IsDir():
			out[rel] = fmt.Sprintf("d %04o", st.Mode&0o7777)
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "l " + target
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("f %04o %s", st.Mode&0o7777, data)
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, inodes
}

// The extractor keeps the directories along the last entry's path open; any
// other order of entries than ours (GNU tar's, files before their
// directories, interleaved directories, paths listed twice) gives the same
// tree as extracting entry by entry.
func TestExtractAnyEntryOrder(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	tests := []struct {
		name   string
		ents   []ent
		want   map[string]string
		links  [][]string // names of one inode
		mtimes bool       // every directory keeps the archive's mtime
	}{
		{"depth-first, sorted (ours)", []ent{dirEnt("d/", 0o750), fileEnt("d/a", "a"), dirEnt("d/sub/", 0o700),
			fileEnt("d/sub/b", "b"), fileEnt("e", "e")},
			map[string]string{"d": "d 0750", "d/a": "f 0644 a", "d/sub": "d 0700", "d/sub/b": "f 0644 b", "e": "f 0644 e"}, nil, true},
		{"files before their directories", []ent{fileEnt("d/sub/b", "b"), fileEnt("d/a", "a"), dirEnt("d/sub/", 0o700), dirEnt("d/", 0o750)},
			map[string]string{"d": "d 0750", "d/a": "f 0644 a", "d/sub": "d 0700", "d/sub/b": "f 0644 b"}, nil, true},
		{"interleaved directories", []ent{dirEnt("a/", 0o755), dirEnt("b/", 0o711), fileEnt("a/x", "x"), fileEnt("b/y", "y"), fileEnt("a/c/z", "z")},
			map[string]string{"a": "d 0755", "b": "d 0711", "a/x": "f 0644 x", "b/y": "f 0644 y", "a/c": "d 0755", "a/c/z": "f 0644 z"}, nil, false},
		{"GNU tar's ./ prefix", []ent{dirEnt("./", 0o700), dirEnt("./d/", 0o755), fileEnt("./d/f", "f"), fileEnt("./g", "g")},
			map[string]string{"d": "d 0755", "d/f": "f 0644 f", "g": "f 0644 g"}, nil, true},
		{"no directory entries", []ent{fileEnt("x/y/z/f", "f"), fileEnt("x/g", "g"), fileEnt("w/h", "h")},
			map[string]string{"x": "d 0755", "x/y": "d 0755", "x/y/z": "d 0755", "x/y/z/f": "f 0644 f", "x/g": "f 0644 g",
				"w": "d 0755", "w/h": "f 0644 h"}, nil, false},
		{"a file listed twice", []ent{fileEnt("f", "one"), {name: "f", typ: tar.TypeReg, mode: 0o600, data: "two"}},
			map[string]string{"f": "f 0600 two"}, nil, true},
		{"a file replaced by a directory", []ent{fileEnt("p", "p"), dirEnt("p/", 0o755), fileEnt("p/q", "q")},
			map[string]string{"p": "d 0755", "p/q": "f 0644 q"}, nil, true},
		{"a symlink replaced by a directory", []ent{dirEnt("d/", 0o755), {name: "l", typ: tar.TypeSymlink, data: "d"},
			dirEnt("l/", 0o755), fileEnt("l/f", "f")},
			map[string]string{"d": "d 0755", "l": "d 0755", "l/f": "f 0644 f"}, nil, true},
		{"a symlink replaced by a file", []ent{{name: "l", typ: tar.TypeSymlink, data: "f"}, fileEnt("f", "f"), fileEnt("l", "l")},
			map[string]string{"f": "f 0644 f", "l": "f 0644 l"}, nil, true},
		{"a directory declared twice", []ent{dirEnt("d/", 0o500), fileEnt("d/f", "f"), dirEnt("e/", 0o755), dirEnt("d/", 0o750), fileEnt("d/g", "g")},
			map[string]string{"d": "d 0750", "d/f": "f 0644 f", "d/g": "f 0644 g", "e": "d 0755"}, nil, false},
		{"hard links across directories", []ent{fileEnt("a/f", "x"), {name: "b/h", typ: tar.TypeLink, data: "a/f"},
			{name: "c/d/h2", typ: tar.TypeLink, data: "b/h"}, {name: "top", typ: tar.TypeLink, data: "./c/d/h2"}},
			map[string]string{"a": "d 0755", "a/f": "f 0644 x", "b": "d 0755", "b/h": "f 0644 x", "c": "d 0755", "c/d": "d 0755",
				"c/d/h2": "f 0644 x", "top": "f 0644 x"}, [][]string{{"a/f", "b/h", "c/d/h2", "top"}}, false},
		{"a hard link into a directory left before", []ent{dirEnt("x/", 0o755), dirEnt("x/y/", 0o755), fileEnt("x/y/f", "f"),
			dirEnt("w/", 0o755), {name: "w/h", typ: tar.TypeLink, data: "x/y/f"}},
			map[string]string{"x": "d 0755", "x/y": "d 0755", "x/y/f": "f 0644 f", "w": "d 0755", "w/h": "f 0644 f"},
			[][]string{{"w/h", "x/y/f"}}, false},
		{"modes with setgid and sticky bits", []ent{dirEnt("s/", 0o1777), {name: "s/x", typ: tar.TypeReg, mode: 0o2755, data: "x"}},
			map[string]string{"s": "d 1777", "s/x": "f 2755 x"}, nil, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer := tarOfEntries(t, tt.ents)
			if i%2 == 1 {
				layer = gzipBytes(t, layer)
			}
			ref := pushArtifact(t, reg.Host, fmt.Sprintf("order%02d", i), layer)
			target := filepath.Join(t.TempDir(), "projects")
			mustSucceed(t, Restore(context.Background(), restoreOpts(ref, target)))
			got, inodes := describe(t, target)
			for p, w := range tt.want {
				if got[p] != w {
					t.Errorf("%s: %q, want %q", p, got[p], w)
				}
			}
			for p := range got {
				if _, ok := tt.want[p]; !ok {
					t.Errorf("unexpected %s: %q", p, got[p])
				}
			}
			if len(inodes) != len(tt.links) {
				t.Errorf("hard-linked inodes %v, want %v", inodes, tt.links)
			}
			for _, names := range inodes {
				if !slicesEqualSorted(names, tt.links) {
					t.Errorf("hard links %v, want one of %v", names, tt.links)
				}
			}
			if !tt.mtimes {
				return
			}
			for p, w := range tt.want {
				info, err := os.Lstat(filepath.Join(target, p))
				if err == nil && w[0] != 'l' && !info.ModTime().Equal(treeTime) {
					t.Errorf("%s: mtime %v, want %v", p, info.ModTime(), treeTime)
				}
			}
		})
	}
}

// The same as a user other than root, as the mover's Job runs: no chown, and
// directory modes hold for the mover too (root's capabilities would hide them).
func TestExtractAnyEntryOrderAsNobody(t *testing.T) {
	if os.Geteuid() == 0 {
		rerunAsNobody(t)
		return
	}
	TestExtractAnyEntryOrder(t)
}

func slicesEqualSorted(names []string, groups [][]string) bool {
	for _, g := range groups {
		if fmt.Sprint(g) == fmt.Sprint(names) {
			return true
		}
	}
	return false
}

// An archive that ends inside a file's data (the registry serves exactly what
// was pushed, so the digest matches) fails InvalidArchive naming the file,
// whether it ends in the first chunk of the data or a later one.
func TestRestoreTruncatedArchive(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	big := string(bytes.Repeat([]byte("0123456789abcdef"), (3*writeChunk+100)/16))
	full := tarOfEntries(t, []ent{fileEnt("small", "small"), fileEnt("dir/big", big), fileEnt("after", "after")})
	start := bytes.Index(full, []byte(big[:64])) // where big's data begins
	tests := []struct {
		name string
		cut  int // bytes of big's data left
		gz   bool
	}{
		{"in the first chunk", 1000, false},
		{"in a later chunk", 2*writeChunk + 5, false},
		{"in a later chunk, gzip", 2*writeChunk + 5, true},
		{"at a chunk's end", writeChunk, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer := full[:start+tt.cut]
			if tt.gz {
				layer = gzipBytes(t, layer)
			}
			ref := pushArtifact(t, reg.Host, fmt.Sprintf("cut%02d", i), layer)
			res := Restore(context.Background(), restoreOpts(ref, filepath.Join(t.TempDir(), "projects")))
			wantReason(t, res, ReasonInvalidArchive)
			if !strings.Contains(res.Message, "dir/big") {
				t.Errorf("message %q does not name the file", res.Message)
			}
		})
	}
}
