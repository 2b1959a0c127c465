package mover

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

func tarOf(t testing.TB, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len("evil"))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte("evil")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRestoreRefusesMaliciousArchives(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg1 := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	tests := []struct {
		name   string
		hdrs   []*tar.Header
		reason string
	}{
		{"absolute path", []*tar.Header{reg1(filepath.Join(base, "evil"))}, ReasonUnsafeEntry},
		{"dot dot", []*tar.Header{reg1("../evil")}, ReasonUnsafeEntry},
		{"nested dot dot", []*tar.Header{reg1("ok/../../evil")}, ReasonUnsafeEntry},
		{"symlink escape then write", []*tar.Header{
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: outside}, reg1("esc/evil")}, ReasonUnsafeEntry},
		{"relative symlink escape then write", []*tar.Header{
			{Name: "d/esc", Typeflag: tar.TypeSymlink, Linkname: "../../outside"}, reg1("d/esc/evil")}, ReasonUnsafeEntry},
		{"symlink inside then write through it", []*tar.Header{
			{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "in", Typeflag: tar.TypeSymlink, Linkname: "d"}, reg1("in/evil")}, ReasonUnsafeEntry},
		{"symlink then directory through it", []*tar.Header{
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "esc/sub/", Typeflag: tar.TypeDir, Mode: 0o755}}, ReasonUnsafeEntry},
		{"hard link escape", []*tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/secret"}}, ReasonUnsafeEntry},
		{"absolute hard link", []*tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: secret}}, ReasonUnsafeEntry},
		{"hard link through symlink", []*tar.Header{
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "h", Typeflag: tar.TypeLink, Linkname: "esc/secret"}}, ReasonUnsafeEntry},
		{"hard link to nothing in the archive", []*tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "secret"}}, ReasonUnsafeEntry},
		{"path over 4096 bytes", []*tar.Header{reg1(strings.Repeat("a/", 2500) + "evil")}, ReasonUnsafeEntry},
		{"oversized PAX header", nil, ReasonInvalidArchive},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, gz := range []bool{false, true} {
				layer := tarOf(t, tt.hdrs...)
				if tt.hdrs == nil {
					layer = oversizedPAX(t)
				}
				if gz {
					layer = gzipBytes(t, layer)
				}
				ref := pushArtifact(t, reg.Host, "case"+string(rune('a'+i))+map[bool]string{true: "gz", false: "tar"}[gz], layer)
				target := filepath.Join(base, "target")
				res := Restore(context.Background(), restoreOpts(ref, target))
				wantReason(t, res, tt.reason)
				if tt.hdrs == nil && !strings.Contains(res.Message, "too long") {
					t.Errorf("oversized header refused for another cause: %s", res.Message)
				}
				assertOnly(t, base, "outside", "outside/secret", "target")
				if data, _ := os.ReadFile(secret); string(data) != "secret" {
					t.Fatalf("secret overwritten: %q", data)
				}
				if err := os.RemoveAll(target); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// assertOnly fails if dir holds anything outside target other than the listed paths.
func assertOnly(t *testing.T, dir string, allowed ...string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if err != nil || rel == "." || strings.HasPrefix(rel, "target/") {
			return err
		}
		if slices.Contains(allowed, rel) {
			return nil
		}
		t.Errorf("written outside the target: %s", rel)
		return nil
	})
}

func TestEntryGuard(t *testing.T) {
	tests := []struct {
		name string
		hdrs []tar.Header // all but the last must pass
		ok   bool
	}{
		{"plain", []tar.Header{{Name: "a/b", Typeflag: tar.TypeReg}}, true},
		{"dot slash", []tar.Header{{Name: "./a", Typeflag: tar.TypeReg}}, true},
		{"root dir entry", []tar.Header{{Name: "./", Typeflag: tar.TypeDir}}, true},
		{"root as file", []tar.Header{{Name: "./", Typeflag: tar.TypeReg}}, false},
		{"empty", []tar.Header{{Name: "", Typeflag: tar.TypeReg}}, false},
		{"nul", []tar.Header{{Name: "a\x00b", Typeflag: tar.TypeReg}}, false},
		{"absolute symlink is data", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, true},
		{"replace symlink by file", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/x"}, {Name: "l", Typeflag: tar.TypeReg}, {Name: "l2", Typeflag: tar.TypeReg}}, true},
		{"under replaced symlink", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/x"}, {Name: "l/", Typeflag: tar.TypeDir}, {Name: "l/f", Typeflag: tar.TypeReg}}, true},
		{"hard link to symlink then through it", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/x"}, {Name: "h", Typeflag: tar.TypeLink, Linkname: "l"}, {Name: "h/f", Typeflag: tar.TypeReg}}, false},
		{"hard link to itself", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "./h"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newEntryGuard()
			for i := range tt.hdrs {
				_, err := g.check(&tt.hdrs[i])
				last := i == len(tt.hdrs)-1
				if !last && err != nil {
					t.Fatalf("entry %d refused: %v", i, err)
				}
				if last && (err == nil) != tt.ok {
					t.Fatalf("last entry: err = %v, want ok=%v", err, tt.ok)
				}
			}
		})
	}
}

// FuzzSafeEntry checks the guard's invariants: an accepted path is relative,
// clean, free of "..", and never below a symlink the archive created before.
func FuzzSafeEntry(f *testing.F) {
	f.Add("l", "/etc", byte(tar.TypeSymlink), "l/x", "", byte(tar.TypeReg))
	f.Add("a", "", byte(tar.TypeReg), "../b", "", byte(tar.TypeReg))
	f.Add("a", "", byte(tar.TypeReg), "h", "../../a", byte(tar.TypeLink))
	f.Add("./d/", "", byte(tar.TypeDir), "d//./l/../x", "", byte(tar.TypeReg))
	f.Fuzz(func(t *testing.T, name1, link1 string, type1 byte, name2, link2 string, type2 byte) {
		g := newEntryGuard()
		p1, err1 := g.check(&tar.Header{Name: name1, Linkname: link1, Typeflag: type1})
		p2, err2 := g.check(&tar.Header{Name: name2, Linkname: link2, Typeflag: type2})
		for i, p := range []string{p1, p2} {
			if []error{err1, err2}[i] != nil {
				continue
			}
			if path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || path.Clean(p) != p {
				t.Fatalf("accepted unsafe path %q", p)
			}
		}
		if err1 == nil && err2 == nil && (type1 == tar.TypeSymlink) && strings.HasPrefix(p2, p1+"/") {
			t.Fatalf("accepted %q below symlink %q", p2, p1)
		}
		if err2 == nil && type2 == tar.TypeLink {
			target := path.Clean(link2)
			if path.IsAbs(link2) || target == ".." || strings.HasPrefix(target, "../") {
				t.Fatalf("accepted hard link to %q", link2)
			}
		}
	})
}

// oversizedPAX is a tar whose first PAX extended header is 2 MiB: Go's writer
// refuses to make one, so its header block is written by hand.
func oversizedPAX(t testing.TB) []byte {
	t.Helper()
	value := strings.Repeat("b", 2<<20)
	rec := "path=" + value + "\n"
	n := len(rec) + 8
	rec = strconv.Itoa(n) + " " + rec
	if len(rec) != n {
		t.Fatalf("PAX record length %d != %d", len(rec), n)
	}
	hdr := make([]byte, 512)
	copy(hdr, "PaxHeader")
	copy(hdr[100:], "0000644\x00")
	copy(hdr[108:], "0000000\x00")
	copy(hdr[116:], "0000000\x00")
	copy(hdr[124:], fmt.Sprintf("%011o\x00", len(rec)))
	copy(hdr[136:], "00000000000\x00")
	hdr[156] = tar.TypeXHeader
	copy(hdr[257:], "ustar\x0000")
	copy(hdr[148:], "        ")
	sum := 0
	for _, b := range hdr {
		sum += int(b)
	}
	copy(hdr[148:], fmt.Sprintf("%06o\x00 ", sum))
	var buf bytes.Buffer
	buf.Write(hdr)
	buf.WriteString(rec)
	buf.Write(make([]byte, (512-len(rec)%512)%512))
	buf.Write(tarOf(t, &tar.Header{Name: "f", Typeflag: tar.TypeReg}))
	return buf.Bytes()
}
