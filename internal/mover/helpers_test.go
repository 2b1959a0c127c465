package mover

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

var fastRetry = registry.Backoff{Attempts: 2, Initial: time.Millisecond, Max: 2 * time.Millisecond}

var treeTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	longDir  = "long"
	unicodeF = "ünïcødé/日本語 ファイル.txt"
)

func longName() string {
	return longDir + "/" + strings.Repeat("x", 200) + "/" + strings.Repeat("y", 150) + ".txt"
}

// makeTree writes a tree with every kind of entry the mover handles, and a FIFO
// and a socket it must skip.
func makeTree(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(name string, data []byte, mode fs.FileMode) {
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20)
	for i := range big {
		if i%3 == 0 {
			big[i] = byte(rnd.IntN(256))
		} else {
			big[i] = 'a' + byte(i%7)
		}
	}
	file("a.txt", []byte("hello\n"), 0o644)
	file("bin/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	file("private", []byte("secret"), 0o600)
	file("empty-file", nil, 0o644)
	file("dir/sub/deep.txt", []byte("deep"), 0o640)
	file("big.bin", big, 0o644)
	file(longName(), []byte("long name"), 0o644)
	file(unicodeF, []byte("unicode"), 0o644)
	// Top-level dotfiles and a .git directory: DWO's own restore (cp -r extracted/*) loses them;
	// ours must not, whether the target exists or is created (TestRestoreCreatesMissingParents).
	file(".git/HEAD", []byte("ref: refs/heads/main\n"), 0o644)
	file(".git/objects/ab/cdef0123", big[:4096], 0o444)
	file(".bashrc", []byte("export EDITOR=vi\n"), 0o644)
	file(".config/tool/settings.json", []byte("{}"), 0o600)
	file("hard1", []byte("same inode"), 0o644)
	must(os.Link(filepath.Join(dir, "hard1"), filepath.Join(dir, "dir/hard2")))
	must(os.MkdirAll(filepath.Join(dir, "empty"), 0o750))
	must(os.Symlink("a.txt", filepath.Join(dir, "link-rel")))
	must(os.Symlink("/etc/hostname", filepath.Join(dir, "link-abs")))
	must(os.Symlink("does/not/exist", filepath.Join(dir, "dangling")))
	must(os.Symlink("dir", filepath.Join(dir, "dirlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	must(l.Close())
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(dir, "private"), 1234, 1234))
	}
	setTimes(t, dir)
}

// setTimes gives every entry the same mtime, deepest first so that directories keep it.
func setTimes(t testing.TB, dir string) {
	t.Helper()
	var paths []string
	_ = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	ts := []unix.Timespec{unix.NsecToTimespec(treeTime.UnixNano()), unix.NsecToTimespec(treeTime.UnixNano())}
	for _, p := range slices.Backward(paths) {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

// snap is what a round trip must preserve about one entry.
type snap struct {
	kind      byte
	mode      fs.FileMode
	size      int64
	sha       string
	mtime     int64
	link      string
	linkGroup string // first path of the inode, for hard links
	uid, gid  uint32
}

// snapshot records every entry below dir, FIFOs and sockets excluded.
func snapshot(t testing.TB, dir string) map[string]snap {
	t.Helper()
	out := map[string]snap{}
	inodes := map[uint64]string{}
	err := walkPath(t, dir, func(e entry) error {
		k := entryKind(e.info.Mode())
		if k == 'o' {
			return nil
		}
		st := e.stat()
		s := snap{kind: k, mode: e.info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			mtime: e.info.ModTime().Unix(), link: e.link}
		if os.Geteuid() == 0 {
			s.uid, s.gid = st.Uid, st.Gid
		}
		if k == 'f' {
			s.size = e.info.Size()
			data, err := os.ReadFile(filepath.Join(dir, e.path))
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			s.sha = hex.EncodeToString(sum[:])
			if first, ok := inodes[st.Ino]; ok {
				s.linkGroup = first
			} else {
				inodes[st.Ino] = e.path
				s.linkGroup = e.path
			}
		}
		if k == 'l' {
			s.mode = 0 // symlink permissions are meaningless on Linux
		}
		out[e.path] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t testing.TB, want, got map[string]snap) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing %q", p)
			continue
		}
		if w != g {
			t.Errorf("%q differs:\n want %+v\n  got %+v", p, w, g)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %q", p)
		}
	}
}

func backupOpts(host, src, tag string) BackupOptions {
	return BackupOptions{Source: src, Repository: host + "/backups/ns/ws", Tag: tag, Workspace: "ws", Namespace: "ns",
		WorkspaceID: "workspace0123456789abcdef", Registry: registry.Options{Insecure: true, Retry: fastRetry}}
}

func restoreOpts(ref, target string) RestoreOptions {
	return RestoreOptions{Target: target, Reference: ref, Registry: registry.Options{Insecure: true, Retry: fastRetry}}
}

func mustSucceed(t testing.TB, res Result) Result {
	t.Helper()
	if res.Phase != PhaseSucceeded {
		t.Fatalf("phase %s reason %s: %s", res.Phase, res.Reason, res.Message)
	}
	return res
}

func wantReason(t testing.TB, res Result, reason string) {
	t.Helper()
	if res.Phase != PhaseFailed || res.Reason != reason {
		t.Fatalf("got %s/%s (%s), want Failed/%s", res.Phase, res.Reason, res.Message, reason)
	}
}

// pushArtifact pushes a layer as a backup artifact and returns repo:tag.
func pushArtifact(t testing.TB, host, tag string, layer []byte) string {
	t.Helper()
	ctx := context.Background()
	c, err := registry.New(registry.Options{Insecure: true, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	name, err := c.ParseRepository(host + "/backups/ns/ws")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.Open(ctx, name, registry.Push)
	if err != nil {
		t.Fatal(err)
	}
	l, err := repo.PushBlob(ctx, MediaTypeLayerGzip, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repo.PushBlob(ctx, MediaTypeEmpty, emptyConfig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := buildManifest(l, cfg, artifactMeta{workspace: "ws", namespace: "ns", created: treeTime})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutManifest(ctx, tag, registry.MediaTypeOCIManifest, m); err != nil {
		t.Fatal(err)
	}
	return repo.Reference(tag)
}

func resolve(t testing.TB, ref string) v1.Hash {
	t.Helper()
	c, err := registry.New(registry.Options{Insecure: true, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("resolve %s: %v", ref, err)
	}
	return d.Digest
}

// countingOpen counts opened files and fails those named in deny.
type countingOpen struct {
	n    int
	deny string
	hook func(n int)
}

func (c *countingOpen) open(name string) (io.ReadCloser, error) {
	c.n++
	if c.hook != nil {
		c.hook(c.n)
	}
	if c.deny != "" && strings.HasSuffix(name, c.deny) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return os.Open(name)
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rerunAsNobody runs the calling test again in a copy of the test binary as
// uid/gid 65534, for what root's capabilities would hide, and fails with it.
func rerunAsNobody(t *testing.T) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mover.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=/nonexistent", "TMPDIR=" + os.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s as nobody: %v\n%s", t.Name(), err, out)
	}
}

// registryAndTree starts an in-process registry and writes makeTree's tree for a test.
func registryAndTree(t *testing.T) (*registrytest.InProcess, string) {
	t.Helper()
	src := t.TempDir()
	makeTree(t, src)
	return registrytest.NewInProcess(t, nil), src
}

// manifestAt reads and parses the manifest a reference names.
func manifestAt(t testing.TB, ref string) ociManifest {
	t.Helper()
	c, err := registry.New(registry.Options{Insecure: true, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	repo, r, err := c.OpenReference(context.Background(), ref, registry.Pull)
	if err != nil {
		t.Fatal(err)
	}
	m, err := repo.GetManifest(context.Background(), r.Identifier())
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	pm, err := parseManifest(m.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// walkPath walks the directory at path dir.
func walkPath(t testing.TB, dir string, visit func(entry) error) error {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	return walk(context.Background(), fd, visit)
}
