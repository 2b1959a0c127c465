package mover

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// withOpenat2 runs f once with the kernel's openat2 and once with the
// component-by-component fallback a kernel or seccomp profile without openat2 gets.
func withOpenat2(t *testing.T, f func(t *testing.T)) {
	t.Run("openat2", f)
	t.Run("fallback", func(t *testing.T) {
		saved := openat2
		openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
		t.Cleanup(func() { openat2 = saved })
		f(t)
	})
}

func TestOpenDirNoSymlinks(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"dir/sub"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"rel-link": "dir", "abs-link": filepath.Join(base, "dir"),
		"dangling": "nowhere", "dir/up": ".."} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path string
		want error // nil: opened
	}{
		{"dir/sub", nil},
		{"dir/sub/", nil},
		{"dir//sub/.", nil},
		{"rel-link", unix.ELOOP},
		{"rel-link/sub", unix.ELOOP},
		{"abs-link/sub", unix.ELOOP},
		{"dir/up/dir", unix.ELOOP},
		{"dangling", unix.ELOOP},
		{"dangling/x", unix.ELOOP},
		{"missing", unix.ENOENT},
		{"missing/x", unix.ENOENT},
		{"file", unix.ENOTDIR},
		{"file/x", unix.ENOTDIR},
	}
	withOpenat2(t, func(t *testing.T) {
		for _, tt := range tests {
			p := filepath.Join(base, tt.path)
			if strings.HasSuffix(tt.path, "/") {
				p += "/"
			}
			fd, err := openDirNoSymlinks(p)
			if tt.want != nil {
				if fd >= 0 {
					_ = unix.Close(fd)
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("%s: error %v, want %v", tt.path, err, tt.want)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", tt.path, err)
				continue
			}
			var got unix.Stat_t
			if err := unix.Fstat(fd, &got); err != nil {
				t.Fatal(err)
			}
			_ = unix.Close(fd)
			want, _ := os.Stat(filepath.Join(base, "dir/sub"))
			if got.Ino != want.Sys().(*syscall.Stat_t).Ino {
				t.Errorf("%s: opened another directory", tt.path)
			}
		}
	})
}

// credentialsLayout is a workspace volume next to a credentials mount, as in the
// mover's pod: base/workspace-storage and base/credentials/config.json.
func credentialsLayout(t *testing.T) (storage, creds string) {
	t.Helper()
	base := t.TempDir()
	storage, creds = filepath.Join(base, "workspace-storage"), filepath.Join(base, "credentials")
	for _, d := range []string{storage, creds, filepath.Join(storage, "real-id", "projects")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(creds, "config.json"), []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return storage, creds
}

func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, err
}

// assertUntouched fails unless dir holds exactly config.json with its content.
func assertUntouched(t *testing.T, dir string) {
	t.Helper()
	names, err := readDirNames(dir)
	if err != nil || len(names) != 1 || names[0] != "config.json" {
		t.Fatalf("%s holds %v (%v), want only config.json", dir, names, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(data) != `{"auths":{}}` {
		t.Fatalf("config.json changed: %q", data)
	}
}

// A workspace volume is the user's: a symlink anywhere along --source (the
// projects directory, the workspace id directory) is refused, so the mover
// never backs up what the symlink points at, such as its own credentials.
func TestBackupRefusesSymlinkedSource(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(storage, creds string) error
		source string // below storage
		phase  Phase
		reason string
	}{
		{"projects is a symlink to the credentials", func(s, c string) error {
			return os.Symlink(c, filepath.Join(s, "id", "projects"))
		}, "id/projects", PhaseFailed, ReasonUnsafeSource},
		{"projects is a relative symlink inside the volume", func(s, _ string) error {
			return os.Symlink("../real-id/projects", filepath.Join(s, "id", "projects"))
		}, "id/projects", PhaseFailed, ReasonUnsafeSource},
		{"the workspace id is a symlink", func(s, c string) error {
			if err := os.Mkdir(filepath.Join(c, "projects"), 0o755); err != nil {
				return err
			}
			return os.Symlink(c, filepath.Join(s, "link-id"))
		}, "link-id/projects", PhaseFailed, ReasonUnsafeSource},
		{"projects is a dangling symlink", func(s, c string) error {
			return os.Symlink(filepath.Join(c, "none"), filepath.Join(s, "id", "projects"))
		}, "id/projects", PhaseFailed, ReasonUnsafeSource},
		{"projects does not exist", func(string, string) error { return nil }, "id/projects", PhaseSkipped, ReasonNoWorkspaceStorage},
		{"projects is a file", func(s, _ string) error {
			return os.WriteFile(filepath.Join(s, "id", "projects"), nil, 0o644)
		}, "id/projects", PhaseFailed, ReasonInvalidArguments},
	}
	withOpenat2(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				reg := registrytest.NewInProcess(t, nil)
				storage, creds := credentialsLayout(t)
				if err := os.Mkdir(filepath.Join(storage, "id"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := tt.setup(storage, creds); err != nil {
					t.Fatal(err)
				}
				res := Backup(context.Background(), backupOpts(reg.Host, filepath.Join(storage, tt.source), "20261126T020000Z"))
				if res.Phase != tt.phase || res.Reason != tt.reason {
					t.Fatalf("got %s/%s (%s), want %s/%s", res.Phase, res.Reason, res.Message, tt.phase, tt.reason)
				}
				if tt.reason == ReasonUnsafeSource && (!strings.Contains(res.Message, "--source") || !strings.Contains(res.Message, "symlink")) {
					t.Errorf("message %q should name --source and the symlink", res.Message)
				}
				if n := reg.Count(http.MethodPatch, "/") + reg.Count(http.MethodPut, "/manifests/"); n != 0 {
					t.Fatalf("a refused backup made %d uploads", n)
				}
				if res.ExitCode() != map[Phase]int{PhaseFailed: ExitPermanent, PhaseSkipped: ExitOK}[tt.phase] {
					t.Errorf("exit %d", res.ExitCode())
				}
			})
		}
	})
	t.Run("relative path", func(t *testing.T) {
		t.Chdir(t.TempDir()) // where a relative path would lead if it were accepted
		res := Backup(context.Background(), backupOpts("127.0.0.1:1", "workspace-storage/projects", "20261126T020000Z"))
		wantReason(t, res, ReasonInvalidArguments)
	})
}

// The same for --target, with --overwrite (the restore that removes things):
// nothing is written or removed anywhere, and a missing target (and its
// missing parents) is created only below a directory that is itself no symlink.
func TestRestoreRefusesSymlinkedTarget(t *testing.T) {
	reg, src := registryAndTree(t)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
	tests := []struct {
		name   string
		setup  func(storage, creds string) error
		target string // below storage
		reason string
	}{
		{"projects is a symlink to the credentials", func(s, c string) error {
			return os.Symlink(c, filepath.Join(s, "id", "projects"))
		}, "id/projects", ReasonUnsafeTarget},
		{"the workspace id is a symlink, projects missing", func(s, c string) error {
			return os.Symlink(c, filepath.Join(s, "link-id"))
		}, "link-id/projects", ReasonUnsafeTarget},
		{"projects is a dangling symlink into the credentials", func(s, c string) error {
			return os.Symlink(filepath.Join(c, "new"), filepath.Join(s, "id", "projects"))
		}, "id/projects", ReasonUnsafeTarget},
		{"the parent of projects is missing: created", func(string, string) error { return nil }, "none/projects", ""},
		{"projects is missing below a real id: created", func(string, string) error { return nil }, "id/projects", ""},
	}
	withOpenat2(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				storage, creds := credentialsLayout(t)
				if err := os.Mkdir(filepath.Join(storage, "id"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := tt.setup(storage, creds); err != nil {
					t.Fatal(err)
				}
				o := restoreOpts(res.Reference, filepath.Join(storage, tt.target))
				o.Overwrite = true
				got := Restore(context.Background(), o)
				if tt.reason == "" {
					mustSucceed(t, got)
					compareTrees(t, snapshot(t, src), snapshot(t, o.Target))
					assertUntouched(t, creds)
					return
				}
				wantReason(t, got, tt.reason)
				if tt.reason == ReasonUnsafeTarget && (!strings.Contains(got.Message, "--target") || !strings.Contains(got.Message, "symlink")) {
					t.Errorf("message %q should name --target and the symlink", got.Message)
				}
				assertUntouched(t, creds)
				if _, err := os.Lstat(filepath.Join(storage, "none")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a missing parent was created: %v", err)
				}
			})
		}
	})
	t.Run("relative path", func(t *testing.T) {
		cwd := t.TempDir() // where a relative path would lead if it were accepted
		t.Chdir(cwd)
		wantReason(t, Restore(context.Background(), restoreOpts(res.Reference, "workspace-storage/projects")), ReasonInvalidArguments)
		if names, _ := readDirNames(cwd); len(names) != 0 {
			t.Fatalf("a refused restore wrote %v", names)
		}
	})
}

// A restore into DWO's common storage, <claim>/<workspace id>/projects, where
// the workspace id directory may not exist yet: every missing component is
// created below the deepest existing directory, each opened without following
// a symlink; a symlink or a file along the existing part creates nothing.
func TestRestoreCreatesMissingParents(t *testing.T) {
	reg, src := registryAndTree(t)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
	tests := []struct {
		name    string
		setup   func(storage, creds string) error
		target  string   // below storage
		created []string // directories below storage the restore makes, the target last
		reason  string   // "" for success
	}{
		{"the workspace id is missing", nil, "new-id/projects", []string{"new-id", "new-id/projects"}, ""},
		{"three levels are missing", nil, "a/b/c/projects", []string{"a", "a/b", "a/b/c", "a/b/c/projects"}, ""},
		{"only the target is missing", nil, "real-id/new", []string{"real-id/new"}, ""},
		{"the target exists and is empty", nil, "real-id/projects", nil, ""},
		{"missing below a symlink to the credentials", func(s, c string) error {
			return os.Symlink(c, filepath.Join(s, "link-id"))
		}, "link-id/new/projects", nil, ReasonUnsafeTarget},
		{"missing below a dangling symlink", func(s, c string) error {
			return os.Symlink(filepath.Join(c, "none"), filepath.Join(s, "dangling"))
		}, "dangling/new/projects", nil, ReasonUnsafeTarget},
		{"missing below a file", func(s, _ string) error {
			return os.WriteFile(filepath.Join(s, "file"), nil, 0o644)
		}, "file/new/projects", nil, ReasonInvalidArguments},
	}
	withOpenat2(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				storage, creds := credentialsLayout(t)
				if tt.setup != nil {
					if err := tt.setup(storage, creds); err != nil {
						t.Fatal(err)
					}
				}
				before, err := readDirNames(storage)
				if err != nil {
					t.Fatal(err)
				}
				o := restoreOpts(res.Reference, filepath.Join(storage, tt.target))
				got := Restore(context.Background(), o)
				assertUntouched(t, creds)
				if tt.reason != "" {
					wantReason(t, got, tt.reason)
					if after, _ := readDirNames(storage); !slices.Equal(before, after) {
						t.Fatalf("a refused restore changed the volume: %v, was %v", after, before)
					}
					return
				}
				mustSucceed(t, got)
				compareTrees(t, snapshot(t, src), snapshot(t, o.Target))
				for _, d := range tt.created {
					info, err := os.Lstat(filepath.Join(storage, d))
					if err != nil || !info.IsDir() {
						t.Fatalf("%s: %v, want a directory", d, err)
					}
				}
			})
		}
	})
}

// The directory the mover opened is the one it works on: a path swapped for a
// symlink after the open is never followed, by the walk or by --overwrite.
func TestSwappedAfterOpen(t *testing.T) {
	swap := func(t *testing.T, dir, creds string) string {
		t.Helper()
		moved := dir + ".moved"
		if err := os.Rename(dir, moved); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(creds, dir); err != nil {
			t.Fatal(err)
		}
		return moved
	}
	t.Run("backup walk", func(t *testing.T) {
		storage, creds := credentialsLayout(t)
		src := filepath.Join(storage, "real-id", "projects")
		if err := os.WriteFile(filepath.Join(src, "mine"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		fd, exists, err := openSource(src)
		if err != nil || !exists {
			t.Fatalf("open source: %v, exists %v", err, exists)
		}
		defer func() { _ = unix.Close(fd) }()
		swap(t, src, creds)
		var seen []string
		if err := walk(context.Background(), fd, func(e entry) error {
			seen = append(seen, e.path)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 || seen[0] != "mine" {
			t.Fatalf("walked %v, want the opened directory's [mine]", seen)
		}
	})
	t.Run("restore overwrite", func(t *testing.T) {
		storage, creds := credentialsLayout(t)
		target := filepath.Join(storage, "real-id", "projects")
		if err := os.WriteFile(filepath.Join(target, "old"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		tgt, err := openTarget(target)
		if err != nil {
			t.Fatal(err)
		}
		defer tgt.close()
		moved := swap(t, target, creds)
		if err := tgt.prepare(true); err != nil {
			t.Fatal(err)
		}
		assertUntouched(t, creds)
		if names, err := readDirNames(moved); err != nil || len(names) != 0 {
			t.Fatalf("the opened directory holds %v (%v), want it emptied", names, err)
		}
	})
	// A missing target, or its missing parent, swapped for a symlink between open and create.
	for _, tc := range []struct{ name, target, swapped string }{
		{"restore into a missing target whose missing parent becomes a symlink", "new-id/projects", "new-id"},
		{"restore into a missing target that becomes a symlink", "real-id/new", "real-id/new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storage, creds := credentialsLayout(t)
			tgt, err := openTarget(filepath.Join(storage, tc.target))
			if err != nil {
				t.Fatal(err)
			}
			defer tgt.close()
			if err := os.Symlink(creds, filepath.Join(storage, tc.swapped)); err != nil {
				t.Fatal(err)
			}
			if err := tgt.prepare(true); reasonOf(err) != ReasonUnsafeTarget {
				t.Fatalf("prepare: %v, want %s", err, ReasonUnsafeTarget)
			}
			assertUntouched(t, creds)
		})
	}
}
