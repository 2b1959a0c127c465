package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The layer of an image made of a program and a directory (the OLM catalog image): every file and
// directory below --dir, programs 0755 and data 0644 (0666 and 0777 below a writable directory,
// opm's cache), in a fixed order, the same bytes every time.
func TestTarOfFilesAndDirs(t *testing.T) {
	src := t.TempDir()
	for name, data := range map[string]string{"pkg/b.yaml": "b", "pkg/a.yaml": "a", "top.json": "{}"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	prog := filepath.Join(t.TempDir(), "opm")
	if err := os.WriteFile(prog, []byte("ELF"), 0o700); err != nil {
		t.Fatal(err)
	}
	layer, err := tarOf(map[string]string{"/bin/opm": prog}, map[string]string{"/configs": src}, "/configs/pkg")
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name string
		mode int64
		data string
	}
	var got []entry
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: owner %d:%d, time %v; want root and the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		got = append(got, entry{h.Name, h.Mode, string(data)})
	}
	want := []entry{
		{"bin/opm", 0o755, "ELF"},
		{"configs/", 0o755, ""},
		{"configs/pkg/", 0o777, ""},
		{"configs/pkg/a.yaml", 0o666, "a"},
		{"configs/pkg/b.yaml", 0o666, "b"},
		{"configs/top.json", 0o644, "{}"},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	again, err := tarOf(map[string]string{"/bin/opm": prog}, map[string]string{"/configs": src}, "/configs/pkg")
	if err != nil || !bytes.Equal(layer, again) {
		t.Errorf("a second layer of the same input differs (err %v)", err)
	}
}

func TestTarOfRefusesSymlinks(t *testing.T) {
	src := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := tarOf(nil, map[string]string{"/configs": src}); err == nil {
		t.Error("a symlink went into the layer")
	}
}
