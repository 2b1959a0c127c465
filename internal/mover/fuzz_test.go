package mover

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzResultEncode: whatever a result holds, its JSON fits a termination message once the fields
// the mover does not shorten are of the size the mover writes (a reference is at most a
// 255-character repository and a 128-character tag), and decodes back to the same result with
// the message cut short at most.
func FuzzResultEncode(f *testing.F) {
	f.Add("Failed", ReasonUnreadableFile, strings.Repeat("ü<>&\"\\", 900), "127.0.0.1:5000/b/ns/ws:t", "sha256:00", int64(1), int64(2), int64(3), true, 1.5)
	f.Add("Succeeded", ReasonCompleted, "\xe2\x82", "", "", int64(-1), int64(0), int64(math.MaxInt64), false, 0.0)
	f.Add("Skipped", "", strings.Repeat("\xff", 5000), "r", "d", int64(0), int64(0), int64(0), false, math.Inf(1))
	f.Fuzz(func(t *testing.T, phase, reason, message, reference, digest string, size, n, files int64, unchanged bool, seconds float64) {
		r := Result{Phase: Phase(phase), Reason: reason, Message: message, Reference: reference, Digest: digest,
			SizeBytes: size, Bytes: n, Files: files, Unchanged: unchanged, DurationSeconds: seconds}
		data := r.Encode()
		bounded := len(phase)+len(reason)+len(reference)+len(digest) <= 512
		if bounded && len(data) >= MaxResultSize {
			t.Fatalf("encoded result is %d bytes", len(data))
		}
		var back Result
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("Encode wrote invalid JSON %q: %v", data, err)
		}
		if math.IsNaN(seconds) || math.IsInf(seconds, 0) {
			return // not JSON numbers: Encode writes its InternalError fallback
		}
		want := normalized(t, r)
		got := back
		got.Message, want.Message = "", ""
		if got != want {
			t.Fatalf("round trip changed the result:\n got %+v\nwant %+v", got, want)
		}
		full := normalized(t, r).Message
		if back.Message != full && (!strings.HasSuffix(back.Message, "...") || !strings.HasPrefix(full, strings.TrimSuffix(back.Message, "..."))) &&
			back.Message != "" {
			t.Fatalf("message %q is not a marked prefix of %q", back.Message, full)
		}
	})
}

// normalized is r as JSON carries it: invalid UTF-8 becomes U+FFFD.
func normalized(t *testing.T, r Result) Result {
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out Result
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzDecodeResult: a termination message is either rejected or yields a result with one of the
// mover's phases.
func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"phase":"Succeeded","reason":"Completed","digest":"sha256:00","files":3}`))
	f.Add([]byte(`{"phase":"Bogus"}`))
	f.Add([]byte(`{"phase":""}`))
	f.Add([]byte(`{"phase":"Failed","files":"x"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeResult(data)
		if err != nil {
			return
		}
		switch r.Phase {
		case PhaseSucceeded, PhaseFailed, PhaseSkipped:
		default:
			t.Fatalf("DecodeResult(%q) accepted phase %q", data, r.Phase)
		}
	})
}

// hostileArchives are seeds for FuzzExtract: every way out of the target the guard refuses.
func hostileArchives(t testing.TB) [][]byte {
	symlink := func(name, target string) ent { return ent{name: name, typ: tar.TypeSymlink, data: target} }
	hardlink := func(name, target string) ent { return ent{name: name, typ: tar.TypeLink, data: target} }
	archives := [][]ent{
		{fileEnt("../outside/canary", "pwned")},
		{fileEnt("/tmp/pwned", "pwned")},
		{fileEnt("a/../../outside/x", "pwned")},
		{symlink("l", "../outside"), fileEnt("l/x", "pwned")},
		{symlink("l", "../outside"), dirEnt("l/", 0o755), fileEnt("l/x", "pwned")},
		{dirEnt("d", 0o755), symlink("d/l", "../../outside"), fileEnt("d/l/canary", "pwned")},
		{symlink("l", "."), symlink("l/m", "../outside"), fileEnt("l/m/x", "pwned")},
		{hardlink("h", "../outside/canary")},
		{symlink("l", "../outside/canary"), hardlink("h", "l/x")},
		{symlink("l", "../outside/canary"), hardlink("h", "l"), fileEnt("h", "pwned")},
		{fileEnt("f", "data"), symlink("f", "../outside/canary"), fileEnt("f", "pwned")},
		{dirEnt(".", 0o777), fileEnt("./x", "ok"), dirEnt("d/", 0o000), fileEnt("d/y", "ok")},
		{fileEnt(".", "replace the target")},
	}
	out := make([][]byte, 0, len(archives)+1)
	for _, a := range archives {
		out = append(out, tarOfEntries(t, a))
	}
	out = append(out, gzipBytes(t, out[3]))
	return out
}

// maxExpansion bounds what an archive may write per byte of its own: gzip's best ratio is
// about 1:1032, a tar with header-only entries writes nothing.
const maxExpansion = 1100

// FuzzExtract extracts hostile tar streams (plain or gzip) into a target beside a directory
// holding a canary file: nothing may appear or change outside the target, no hard link may
// reach the canary, nothing panics, and an archive writes no more than maxExpansion bytes per
// byte of its own.
func FuzzExtract(f *testing.F) {
	for _, a := range hostileArchives(f) {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sandbox := t.TempDir()
		target, outside := filepath.Join(sandbox, "target"), filepath.Join(sandbox, "outside")
		canary := filepath.Join(outside, "canary")
		for _, dir := range []string{target, outside} {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(canary, []byte("canary"), 0o644); err != nil {
			t.Fatal(err)
		}
		before, _ := describe(t, sandbox)
		delete(before, "target")
		dirfd, err := unix.Open(target, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var count counters
		_ = extractStream(context.Background(), bytes.NewReader(data), dirfd, &count)
		_ = unix.Close(dirfd)
		// Directories the archive left unreadable must not hide what is below them from the walk.
		_ = filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
			if d != nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		after, _ := describe(t, sandbox)
		for name, what := range after {
			if name != "target" && !strings.HasPrefix(name, "target"+string(filepath.Separator)) && before[name] != what {
				t.Fatalf("%s outside the target is now %q (was %q)", name, what, before[name])
			}
		}
		for name := range before {
			if _, ok := after[name]; !ok {
				t.Fatalf("%s outside the target is gone", name)
			}
		}
		var st unix.Stat_t
		if err := unix.Stat(canary, &st); err != nil || st.Nlink != 1 {
			t.Fatalf("the canary has %d links (%v): a hard link reached it", st.Nlink, err)
		}
		if written := count.bytes.Load(); written > maxExpansion*int64(len(data))+4096 {
			t.Fatalf("a %d-byte archive wrote %d bytes", len(data), written)
		}
	})
}
