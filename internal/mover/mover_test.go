package mover

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

func TestRoundTripEveryEntryKind(t *testing.T) {
	reg, src := registryAndTree(t)
	want := snapshot(t, src)

	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
	if res.Unchanged || res.SizeBytes == 0 || res.Files == 0 || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Fatalf("unexpected result %+v", res)
	}
	if !strings.Contains(res.Message, "2 skipped") {
		t.Errorf("FIFO and socket not reported as skipped: %s", res.Message)
	}
	target := filepath.Join(t.TempDir(), "restored")
	rres := mustSucceed(t, Restore(context.Background(), restoreOpts(res.Reference, target)))
	if rres.Digest != res.Digest || rres.Files != res.Files || rres.Bytes != res.Bytes {
		t.Errorf("restore result %+v does not match backup %+v", rres, res)
	}
	compareTrees(t, want, snapshot(t, target))
}

func TestManifestFormat(t *testing.T) {
	reg, src := registryAndTree(t)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z-abc123")))
	c, _ := registry.New(registry.Options{Insecure: true})
	repo, ref, err := c.OpenReference(context.Background(), res.Reference, registry.Pull)
	if err != nil {
		t.Fatal(err)
	}
	m, err := repo.GetManifest(context.Background(), ref.Identifier())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(m.Bytes, &got); err != nil {
		t.Fatal(err)
	}
	pm, _ := parseManifest(m.Bytes)
	checks := map[string]string{
		"artifactType":        pm.ArtifactType,
		"mediaType":           pm.MediaType,
		"config.mediaType":    pm.Config.MediaType,
		"config.digest":       pm.Config.Digest,
		"layer.mediaType":     pm.Layers[0].MediaType,
		"layer.title":         pm.Layers[0].Annotations[AnnotationTitle],
		"devworkspace.name":   pm.Annotations[AnnotationWorkspaceName],
		"devworkspace.ns":     pm.Annotations[AnnotationWorkspaceNamespace],
		"created":             pm.Annotations[AnnotationCreated],
		"workspace-id":        pm.Annotations[AnnotationWorkspaceID],
		"fingerprint version": strings.SplitN(pm.Annotations[AnnotationTreeFingerprint], ":", 2)[0],
	}
	want := map[string]string{
		"artifactType":        ArtifactType,
		"mediaType":           registry.MediaTypeOCIManifest,
		"config.mediaType":    MediaTypeEmpty,
		"config.digest":       "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
		"layer.mediaType":     MediaTypeLayerGzip,
		"layer.title":         LayerTitle,
		"devworkspace.name":   "ws",
		"devworkspace.ns":     "ns",
		"created":             "2026-11-26T02:00:00Z",
		"workspace-id":        "workspace0123456789abcdef",
		"fingerprint version": fingerprintVersion,
	}
	for k, w := range want {
		if checks[k] != w {
			t.Errorf("%s = %q, want %q", k, checks[k], w)
		}
	}
	if len(pm.Layers) != 1 || pm.Layers[0].Size != res.SizeBytes {
		t.Errorf("layers %+v, result size %d", pm.Layers, res.SizeBytes)
	}
}

func TestBackupIsDeterministic(t *testing.T) {
	reg, src := registryAndTree(t)
	layerOf := func(repoPath string) (string, string) {
		o := backupOpts(reg.Host, src, "20261126T020000Z")
		o.Repository = reg.Host + repoPath
		res := mustSucceed(t, Backup(context.Background(), o))
		c, _ := registry.New(registry.Options{Insecure: true})
		repo, ref, _ := c.OpenReference(context.Background(), res.Reference, registry.Pull)
		m, err := repo.GetManifest(context.Background(), ref.Identifier())
		if err != nil {
			t.Fatal(err)
		}
		pm, _ := parseManifest(m.Bytes)
		return pm.Layers[0].Digest, res.Digest
	}
	l1, m1 := layerOf("/one/ns/ws")
	l2, m2 := layerOf("/two/ns/ws")
	if l1 != l2 || m1 != m2 {
		t.Fatalf("same tree gave layers %s / %s and manifests %s / %s", l1, l2, m1, m2)
	}
}

func TestUnchangedShortcut(t *testing.T) {
	reg, src := registryAndTree(t)
	ctx := context.Background()
	first := mustSucceed(t, Backup(ctx, backupOpts(reg.Host, src, "20261126T020000Z")))
	patches := reg.Count(http.MethodPatch, "/blobs/uploads/")

	opens := &countingOpen{}
	o := backupOpts(reg.Host, src, "20261127T020000Z")
	o.Open = opens.open
	second := mustSucceed(t, Backup(ctx, o))
	if !second.Unchanged || second.Digest != first.Digest || second.Reason != ReasonUnchanged {
		t.Fatalf("second backup %+v, want unchanged with digest %s", second, first.Digest)
	}
	if opens.n != 0 {
		t.Errorf("unchanged backup opened %d files", opens.n)
	}
	if n := reg.Count(http.MethodPatch, "/blobs/uploads/") - patches; n != 0 {
		t.Errorf("unchanged backup uploaded %d blobs", n)
	}
	if d := resolve(t, second.Reference); d.String() != first.Digest {
		t.Errorf("new tag points at %s, want %s", d, first.Digest)
	}
	if second.Files != first.Files || second.Bytes != first.Bytes || second.SizeBytes != first.SizeBytes {
		t.Errorf("unchanged result %+v does not describe the artifact %+v", second, first)
	}

	// Touching one file changes the fingerprint: a full backup follows.
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := mustSucceed(t, Backup(ctx, backupOpts(reg.Host, src, "20261128T020000Z")))
	if third.Unchanged || third.Digest == first.Digest {
		t.Fatalf("changed tree reported unchanged: %+v", third)
	}
	if d := resolve(t, reg.Host+"/backups/ns/ws:latest"); d.String() != third.Digest {
		t.Errorf("latest at %s, want %s", d, third.Digest)
	}
}

func TestUnreadableFile(t *testing.T) {
	reg, src := registryAndTree(t)
	o := backupOpts(reg.Host, src, "20261126T020000Z")
	o.Open = (&countingOpen{deny: "dir/sub/deep.txt"}).open
	res := Backup(context.Background(), o)
	wantReason(t, res, ReasonUnreadableFile)
	if !strings.Contains(res.Message, "dir/sub/deep.txt") || strings.Contains(res.Message, src) {
		t.Errorf("message should name the relative path: %s", res.Message)
	}
	if n := reg.Count(http.MethodPut, "/manifests/"); n != 0 {
		t.Errorf("a failed backup put %d manifests", n)
	}
}

// A file the mover's user may not read, through the real open (no hook). Root
// reads anything, so as root the test runs itself again as nobody.
func TestUnreadableFileRealPermissions(t *testing.T) {
	if os.Geteuid() == 0 {
		rerunAsNobody(t)
		return
	}
	reg := registrytest.NewInProcess(t, nil)
	src := t.TempDir()
	p := filepath.Join(src, "locked")
	if err := os.WriteFile(p, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	res := Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z"))
	wantReason(t, res, ReasonUnreadableFile)
	if !strings.Contains(res.Message, "locked") {
		t.Errorf("message should name the file: %s", res.Message)
	}
}

func TestMissingSourceIsSkipped(t *testing.T) {
	res := Backup(context.Background(), backupOpts("127.0.0.1:1", filepath.Join(t.TempDir(), "nope"), "20261126T020000Z"))
	if res.Phase != PhaseSkipped || res.Reason != ReasonNoWorkspaceStorage || !res.OK() {
		t.Fatalf("got %+v", res)
	}
}

// failingHandler makes the registry fail the requests match selects.
func failingHandler(match func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) {
				http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

func TestLatestUntouchedWhenUploadFails(t *testing.T) {
	tests := []struct {
		name  string
		match func(*http.Request) bool
	}{
		{"blob PATCH fails", func(r *http.Request) bool { return r.Method == http.MethodPatch }},
		{"blob commit fails", func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength <= 0
		}},
		{"tag manifest fails", func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/20261127T020000Z")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failing atomic.Bool
			reg := registrytest.NewInProcess(t, failingHandler(func(r *http.Request) bool { return failing.Load() && tt.match(r) }))
			src := t.TempDir()
			makeTree(t, src)
			first := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
			if err := os.WriteFile(filepath.Join(src, "new"), []byte("new"), 0o644); err != nil {
				t.Fatal(err)
			}
			failing.Store(true)
			res := Backup(context.Background(), backupOpts(reg.Host, src, "20261127T020000Z"))
			wantReason(t, res, ReasonUnauthorized)
			failing.Store(false)
			if d := resolve(t, reg.Host+"/backups/ns/ws:latest"); d.String() != first.Digest {
				t.Fatalf("latest moved to %s after a failed backup", d)
			}
		})
	}
}

func TestCancelNeverMovesLatest(t *testing.T) {
	t.Run("during the walk", func(t *testing.T) {
		reg, src := registryAndTree(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		o := backupOpts(reg.Host, src, "20261126T020000Z")
		o.Open = (&countingOpen{hook: func(n int) {
			if n == 3 {
				cancel()
			}
		}}).open
		wantReason(t, Backup(ctx, o), ReasonCanceled)
		if n := reg.Count(http.MethodPut, "/manifests/"); n != 0 {
			t.Fatalf("a cancelled backup put %d manifests", n)
		}
	})
	t.Run("after the tag is put", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/20261126T020000Z") {
					cancel() // SIGTERM arrives right after the unique tag was written
				}
			})
		})
		src := t.TempDir()
		makeTree(t, src)
		wantReason(t, Backup(ctx, backupOpts(reg.Host, src, "20261126T020000Z")), ReasonCanceled)
		if n := reg.Count(http.MethodPut, "/manifests/latest"); n != 0 {
			t.Fatalf("latest was put after cancellation")
		}
	})
}

func TestPlainHTTPRefused(t *testing.T) {
	reg, src := registryAndTree(t)
	o := backupOpts(reg.Host, src, "20261126T020000Z")
	o.Registry.Insecure = false
	wantReason(t, Backup(context.Background(), o), ReasonPlainHTTPRefused)
	r := restoreOpts(reg.Host+"/backups/ns/ws:latest", t.TempDir())
	r.Registry.Insecure = false
	wantReason(t, Restore(context.Background(), r), ReasonPlainHTTPRefused)
}

func TestRestoreByTagAndDigest(t *testing.T) {
	reg, src := registryAndTree(t)
	want := snapshot(t, src)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
	for name, ref := range map[string]string{
		"tag":    reg.Host + "/backups/ns/ws:latest",
		"digest": reg.Host + "/backups/ns/ws@" + res.Digest,
	} {
		t.Run(name, func(t *testing.T) {
			target := t.TempDir()
			rres := mustSucceed(t, Restore(context.Background(), restoreOpts(ref, target)))
			if rres.Digest != res.Digest {
				t.Errorf("restored %s, want %s", rres.Digest, res.Digest)
			}
			compareTrees(t, want, snapshot(t, target))
		})
	}
	wantReason(t, Restore(context.Background(), restoreOpts(reg.Host+"/backups/ns/ws:nope", t.TempDir())), ReasonArtifactNotFound)
}

// nonEmptyTarget is a restore target that already holds old/dir/file.
func nonEmptyTarget(t *testing.T) string {
	t.Helper()
	target := t.TempDir()
	if err := os.MkdirAll(filepath.Join(target, "old/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "old/dir/file"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	return target
}

func TestRestoreTargetNotEmptyAndOverwrite(t *testing.T) {
	reg, src := registryAndTree(t)
	want := snapshot(t, src)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))

	target := nonEmptyTarget(t)
	wantReason(t, Restore(context.Background(), restoreOpts(res.Reference, target)), ReasonTargetNotEmpty)
	if _, err := os.Stat(filepath.Join(target, "old/dir/file")); err != nil {
		t.Fatalf("a refused restore touched the target: %v", err)
	}
	o := restoreOpts(res.Reference, target)
	o.Overwrite = true
	mustSucceed(t, Restore(context.Background(), o))
	compareTrees(t, want, snapshot(t, target))
}

// --overwrite empties the target only once the blob is open and announced with
// the size the manifest gives: a registry that lost the blob, sends a short
// one or fails leaves the workspace as it was.
func TestOverwriteKeepsTargetWhenBlobUnavailable(t *testing.T) {
	tests := []struct {
		name   string
		serve  func(w http.ResponseWriter, body []byte) // a layer blob GET
		reason string
	}{
		{"blob missing", func(w http.ResponseWriter, _ []byte) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`))
		}, ReasonArtifactNotFound},
		{"blob shorter than the manifest says", func(w http.ResponseWriter, body []byte) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)/2))
			_, _ = w.Write(body[:len(body)/2])
		}, ReasonDigestMismatch},
		{"registry fails", func(w http.ResponseWriter, _ []byte) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}, ReasonRegistryUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failing atomic.Bool
			reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !failing.Load() || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
						h.ServeHTTP(w, r)
						return
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					tt.serve(w, rec.Body.Bytes())
				})
			})
			src := t.TempDir()
			makeTree(t, src)
			res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))

			target := nonEmptyTarget(t)
			want := snapshot(t, target)
			failing.Store(true)
			o := restoreOpts(res.Reference, target)
			o.Overwrite = true
			wantReason(t, Restore(context.Background(), o), tt.reason)
			compareTrees(t, want, snapshot(t, target))
		})
	}
}

func TestRestoreDigestMismatch(t *testing.T) {
	reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if len(body) > 100 {
				body[len(body)-20] ^= 0xff // in the gzip trailer: the tar still reads
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	})
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat("data ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, "20261126T020000Z")))
	wantReason(t, Restore(context.Background(), restoreOpts(res.Reference, t.TempDir())), ReasonDigestMismatch)
}

func TestResultFitsTerminationMessage(t *testing.T) {
	for _, msg := range []string{strings.Repeat("x", 10000), strings.Repeat("ü<>&", 5000), ""} {
		r := Result{Phase: PhaseFailed, Reason: ReasonUnreadableFile, Message: msg, Reference: "reg/x:y"}
		data := r.Encode()
		if len(data) >= MaxResultSize {
			t.Fatalf("result is %d bytes", len(data))
		}
		back, err := DecodeResult(data)
		if err != nil || back.Phase != PhaseFailed || !strings.HasPrefix(msg, strings.TrimSuffix(back.Message, "...")) {
			t.Fatalf("decode: %v %+v", err, back)
		}
	}
	var keys map[string]any
	_ = json.Unmarshal(Result{Phase: PhaseSucceeded}.Encode(), &keys)
	for _, k := range []string{"phase", "reason", "message", "reference", "digest", "sizeBytes", "bytes", "files", "unchanged", "durationSeconds"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("result JSON lacks %q", k)
		}
	}
}
