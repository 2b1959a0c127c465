package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

func readResult(t *testing.T, path string) mover.Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := mover.DecodeResult(data)
	if err != nil {
		t.Fatalf("result %q: %v", data, err)
	}
	return r
}

func TestBackupAndRestoreCommands(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	resultFile := filepath.Join(t.TempDir(), "result.json")
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"backup", "--source", src, "--repository", reg.Host + "/b/ns/ws",
		"--tag", "20261126T020000Z", "--workspace", "ws", "--namespace", "ns", "--workspace-id", "workspace1",
		"--insecure", "--result-file", resultFile}, &stderr)
	res := readResult(t, resultFile)
	if code != 0 || res.Phase != mover.PhaseSucceeded || res.Files != 1 || res.Bytes != 5 {
		t.Fatalf("backup exit %d, result %+v, stderr %s", code, res, stderr.String())
	}

	target := filepath.Join(t.TempDir(), "t")
	code = run(context.Background(), []string{"restore", "--target", target, "--reference", res.Reference,
		"--insecure", "--result-file", resultFile}, &stderr)
	if rr := readResult(t, resultFile); code != 0 || rr.Digest != res.Digest {
		t.Fatalf("restore exit %d, result %+v", code, rr)
	}
	if data, _ := os.ReadFile(filepath.Join(target, "f.txt")); string(data) != "hello" {
		t.Fatalf("restored %q", data)
	}

	// Restoring again into the now non-empty target fails for good: exit 3, so the Job does not retry.
	code = run(context.Background(), []string{"restore", "--target", target, "--reference", res.Reference,
		"--insecure", "--result-file", resultFile}, &stderr)
	if rr := readResult(t, resultFile); code != mover.ExitPermanent || rr.Reason != mover.ReasonTargetNotEmpty {
		t.Fatalf("second restore exit %d, result %+v", code, rr)
	}
}

func TestMissingSourceExitsZero(t *testing.T) {
	resultFile := filepath.Join(t.TempDir(), "result.json")
	code := run(context.Background(), []string{"backup", "--source", filepath.Join(t.TempDir(), "none"),
		"--repository", "127.0.0.1:1/b/ns/ws", "--tag", "20261126T020000Z", "--workspace", "ws", "--namespace", "ns",
		"--result-file", resultFile}, &bytes.Buffer{})
	res := readResult(t, resultFile)
	if code != 0 || res.Phase != mover.PhaseSkipped || res.Reason != mover.ReasonNoWorkspaceStorage {
		t.Fatalf("exit %d, result %+v", code, res)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"backup", "--bogus"}, {"restore", "extra"}} {
		resultFile := filepath.Join(t.TempDir(), "result.json")
		var stderr bytes.Buffer
		code := run(context.Background(), append(args, "--result-file", resultFile), &stderr)
		if len(args) == 0 {
			code = run(context.Background(), nil, &stderr)
		}
		if code != 2 || !strings.Contains(stderr.String(), "usage:") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
	resultFile := filepath.Join(t.TempDir(), "result.json")
	code := run(context.Background(), []string{"backup", "--source", "/x", "--result-file", resultFile}, &bytes.Buffer{})
	if res := readResult(t, resultFile); code != mover.ExitPermanent || res.Reason != mover.ReasonInvalidArguments {
		t.Errorf("missing flags: exit %d, result %+v", code, res)
	}
}

// --created sets the manifest's backup time for a tag that holds none; a value
// that is not RFC 3339 is refused for good before anything is pushed.
func TestBackupCreatedFlag(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		created string
		code    int
		reason  string
		want    string // the created annotation
	}{
		{"2026-11-26T02:00:00Z", mover.ExitOK, mover.ReasonCompleted, "2026-11-26T02:00:00Z"},
		{"2026-11-26T03:00:00+01:00", mover.ExitOK, mover.ReasonCompleted, "2026-11-26T02:00:00Z"},
		{"20261126T020000Z", mover.ExitPermanent, mover.ReasonInvalidArguments, ""},
		{"yesterday", mover.ExitPermanent, mover.ReasonInvalidArguments, ""},
	}
	for i, tt := range tests {
		t.Run(tt.created, func(t *testing.T) {
			resultFile := filepath.Join(t.TempDir(), "result.json")
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"backup", "--source", src,
				"--repository", reg.Host + "/b" + string(rune('a'+i)) + "/ns/ws", "--tag", "manual-a1b2c3",
				"--created", tt.created, "--workspace", "ws", "--namespace", "ns", "--insecure",
				"--result-file", resultFile}, &stderr)
			res := readResult(t, resultFile)
			if code != tt.code || res.Reason != tt.reason {
				t.Fatalf("exit %d, result %+v, stderr %s", code, res, stderr.String())
			}
			if tt.want == "" {
				if n := reg.Count("PUT", "/b"+string(rune('a'+i))+"/"); n != 0 {
					t.Fatalf("a refused backup made %d PUT requests", n)
				}
				return
			}
			if got := createdAnnotation(t, res.Reference); got != tt.want {
				t.Errorf("created annotation %q, want %q", got, tt.want)
			}
		})
	}
}

func createdAnnotation(t *testing.T, ref string) string {
	t.Helper()
	c, err := registry.New(registry.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	repo, r, err := c.OpenReference(context.Background(), ref, registry.Pull)
	if err != nil {
		t.Fatal(err)
	}
	m, err := repo.GetManifest(context.Background(), r.Identifier())
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(m.Bytes, &parsed); err != nil {
		t.Fatal(err)
	}
	return parsed.Annotations[mover.AnnotationCreated]
}
