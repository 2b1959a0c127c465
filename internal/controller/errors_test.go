package controller

import (
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

func TestRefusedForGood(t *testing.T) {
	jobs := schema.GroupResource{Group: "batch", Resource: "jobs"}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"admission webhook or quota (Forbidden)", apierrors.NewForbidden(jobs, "backup-x", errors.New("exceeded quota")), true},
		{"ValidatingAdmissionPolicy or invalid override (Invalid)", apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"},
			"backup-x", field.ErrorList{field.Invalid(field.NewPath("spec"), 1, "denied")}), true},
		{"bad request", apierrors.NewBadRequest("nope"), true},
		{"timeout is transient", apierrors.NewTimeoutError("slow", 1), false},
		{"server error is transient", apierrors.NewInternalError(errors.New("etcd")), false},
		{"too many requests is transient", apierrors.NewTooManyRequests("later", 1), false},
		{"a network error is transient", errors.New("connection refused"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := refusedForGood(tc.err); got != tc.want {
				t.Fatalf("refusedForGood(%v) = %v, want %v", tc.err, got, tc.want)
			}
			_, terminal := asTerminal(refusal(tc.err, "Job"))
			if terminal != tc.want {
				t.Fatalf("refusal(%v) terminal = %v, want %v", tc.err, terminal, tc.want)
			}
		})
	}
}

func TestLaunchRetriesGiveUpAfterTheWindow(t *testing.T) {
	var l launchRetries
	start := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	if l.giveUp("a", start) || l.giveUp("a", start.Add(launchRetryWindow)) {
		t.Fatal("gave up within the window")
	}
	if l.giveUp("b", start.Add(time.Hour)) {
		t.Fatal("another object shares the window")
	}
	if !l.giveUp("a", start.Add(launchRetryWindow+time.Second)) {
		t.Fatal("did not give up after the window")
	}
	l.forget("a")
	if l.giveUp("a", start.Add(2*time.Hour)) {
		t.Fatal("a forgotten object starts a new window")
	}
}

func TestRestoreLocks(t *testing.T) {
	l := newRestoreLocks()
	if h := l.acquire("ns", "ws", "r1"); h != "" {
		t.Fatalf("first acquire refused by %q", h)
	}
	if h := l.acquire("ns", "ws", "r1"); h != "" {
		t.Fatal("the holder cannot take its lock again")
	}
	if h := l.acquire("ns", "ws", "r2"); h != "r1" {
		t.Fatalf("second restore of the workspace got the lock (holder %q)", h)
	}
	if h := l.acquire("other", "ws", "r2"); h != "" {
		t.Fatal("a workspace of the same name in another namespace is another lock")
	}
	if l.holder("ns", "ws") != "r1" {
		t.Fatal("holder not reported")
	}
	l.release("ns", "ws", "r2") // not the holder: no effect
	if l.holder("ns", "ws") != "r1" {
		t.Fatal("a non-holder released the lock")
	}
	l.release("ns", "ws", "r1")
	if h := l.acquire("ns", "ws", "r2"); h != "" {
		t.Fatal("released lock not free")
	}
	l.releaseAll("other", "r2") // a restore of that name in another namespace is gone
	if l.holder("ns", "ws") != "r2" {
		t.Fatal("releaseAll freed another namespace's lock")
	}
	l.releaseAll("ns", "r2") // the restore was deleted while it held the workspace
	if l.holder("ns", "ws") != "" || l.holder("other", "ws") != "" {
		t.Fatal("releaseAll left a lock of the deleted restore")
	}
}

func TestReferenceAllowed(t *testing.T) {
	const repo = "reg.example.com/backups"
	digest := "sha256:" + sha256Hex("x")
	own := &backupv1alpha1.BackupPolicy{Spec: backupv1alpha1.BackupPolicySpec{Registry: backupv1alpha1.RegistrySpec{Repository: repo}}}
	cross := own.DeepCopy()
	cross.Spec.AllowCrossNamespaceRestore = true
	cases := []struct {
		name   string
		ref    string
		policy *backupv1alpha1.BackupPolicy
		want   bool
	}{
		{"own workspace by tag", repo + "/team-a/ws:nightly-20261126T020000Z", own, true},
		{"own workspace by digest", repo + "/team-a/ws@" + digest, own, true},
		{"a deleted workspace's backups stay restorable", repo + "/team-a/old-ws:latest", own, true},
		{"another namespace", repo + "/team-b/ws:latest", own, false},
		{"another namespace, allowed", repo + "/team-b/ws:latest", cross, true},
		{"deeper path: another policy's repository", repo + "/team-a/ws/other:latest", own, false},
		{"deeper path even across namespaces", repo + "/team-b/nested/ws@" + digest, cross, false},
		{"no workspace segment", repo + "/team-a:latest", own, false},
		{"empty workspace segment", repo + "/team-a/:latest", own, false},
		{"dot-dot segment", repo + "/team-a/../team-b/ws:latest", own, false},
		{"outside the repository", "evil.example.com/backups/team-a/ws:latest", own, false},
		{"repository prefix without a slash", repo + "-evil/team-a/ws:latest", own, false},
		{"not a reference", repo + "/team-a/WS:latest", own, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := referenceAllowed(tc.ref, tc.policy, "team-a"); got != tc.want {
				t.Fatalf("referenceAllowed(%q) = %v, want %v", tc.ref, got, tc.want)
			}
		})
	}
}
