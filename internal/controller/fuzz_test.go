package controller

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// repositoryPattern is the CEL rule of spec.registry.repository (api/v1alpha1/backuppolicy_types.go).
var repositoryPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$`)

// FuzzReferenceAllowed: an artifactReference a policy allows parses strictly and names a
// repository exactly one level below <repository>/<namespace>/, the restore's own namespace
// unless the policy allows cross-namespace restores.
func FuzzReferenceAllowed(f *testing.F) {
	f.Add("registry.example.com/backups", "team-a", "registry.example.com/backups/team-a/ws:latest", false)
	f.Add("registry.example.com/backups", "team-a", "registry.example.com/backups/team-b/ws@sha256:"+strings.Repeat("a", 64), true)
	f.Add("127.0.0.1:5000", "ns", "127.0.0.1:5000/ns/ws/deeper:t", false)
	f.Add("reg", "ns", "reg/ns/ws:t@sha256:"+strings.Repeat("0", 64), false)
	f.Add("reg/b", "ns", "reg/b/ns/WS:t", false)
	f.Add("docker.io/b", "ns", "docker.io/b/ns/ws:t", false)
	f.Fuzz(func(t *testing.T, repository, namespace, reference string, cross bool) {
		if !repositoryPattern.MatchString(repository) {
			return // refused by the schema
		}
		policy := &backupv1alpha1.BackupPolicy{}
		policy.Spec.Registry.Repository = repository
		policy.Spec.AllowCrossNamespaceRestore = cross
		if !referenceAllowed(reference, policy, namespace) {
			return
		}
		ref, err := name.ParseReference(reference, name.StrictValidation)
		if err != nil {
			t.Fatalf("allowed %q, which does not parse: %v", reference, err)
		}
		rest := strings.TrimPrefix(reference, repository+"/")
		ns, rest, _ := strings.Cut(rest, "/")
		if ns != namespace && !cross {
			t.Fatalf("allowed %q from namespace %q into %q", reference, ns, namespace)
		}
		ws := rest[:strings.IndexAny(rest+":", ":@")]
		want, err := name.NewRepository(repository+"/"+ns+"/"+ws, name.StrictValidation)
		if err != nil || want.Name() != ref.Context().Name() {
			t.Fatalf("allowed %q, which pulls %s, not a workspace repository under %s/%s/ (%v)",
				reference, ref.Context().Name(), repository, ns, err)
		}
	})
}

// FuzzMoverResultFrom: whatever a pod left in its termination message, the controller either
// finds no result or one it can record: a failed Job's condition reason and message pass the API
// server's validation, so a hostile or garbled message can never wedge a backup in Running.
func FuzzMoverResultFrom(f *testing.F) {
	f.Add(`{"phase":"Failed","reason":"Unauthorized","message":"401"}`)
	f.Add(`{"phase":"Failed","reason":"not a reason!","message":"x"}`)
	f.Add(`{"phase":"Failed","reason":"` + strings.Repeat("A", 2000) + `"}`)
	f.Add(`{"phase":"Succeeded","digest":"sha256:00"}`)
	f.Add(`{"phase":"Bogus"}`)
	f.Add(`{"phase":"Failed"`)
	f.Fuzz(func(t *testing.T, message string) {
		pod := corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: moverContainerName,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: message}}}}}}
		result, ok := moverResultFrom([]corev1.Pod{pod})
		if !ok {
			return
		}
		if _, err := mover.DecodeResult([]byte(message)); err != nil {
			t.Fatalf("took %+v from a message the mover's decoder refuses: %v", result, err)
		}
		failure := failedResult(jobProgress{result: result, hasResult: true, jobName: "ws-nightly-202611260200"})
		cond := metav1.Condition{Type: backupv1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: failure.reason, Message: failure.message, LastTransitionTime: metav1.Now()}
		if errs := metav1validation.ValidateCondition(cond, field.NewPath("status", "conditions").Index(0)); len(errs) > 0 {
			t.Fatalf("message %q gives a condition the API server refuses: %v", message, errs.ToAggregate())
		}
	})
}

// fuzzZones are the zones whose offset changes are the hardest on a schedule: half-hour and
// 45-minute offsets, 30-minute DST, changes at midnight, a day skipped, a change of two hours.
var fuzzZones = []string{"UTC", "Europe/Prague", "America/New_York", "Pacific/Chatham", "Australia/Lord_Howe",
	"Antarctica/Troll", "America/Santiago", "Pacific/Apia", "Asia/Kolkata", "America/St_Johns", "Africa/Casablanca",
	"Asia/Tehran", "America/Havana", "Pacific/Kiritimati"}

// FuzzScheduleSlots: over any schedule, zone and time from 1970 to 2100, the next slot is a UTC
// instant strictly after t that matches the schedule on the zone's wall clock, every instant
// between t and it has the same next slot, slots strictly increase, and the latest slot in
// (since, now] is in that window with the next slot after now.
func FuzzScheduleSlots(f *testing.F) {
	f.Add("0 2 * * *", uint8(1), int64(1774746000), uint32(86400))   // Prague, the spring change of 2026
	f.Add("30 2 * * *", uint8(4), int64(1775314800), uint32(7200))   // Lord Howe's half-hour change
	f.Add("*/15 * * * *", uint8(3), int64(1775311200), uint32(3600)) // Chatham
	f.Add("0 0 * * *", uint8(6), int64(1775358000), uint32(172800))  // Santiago at midnight
	f.Add("0 12 29 2 *", uint8(0), int64(0), uint32(4000000000))
	f.Add("@weekly", uint8(7), int64(1325289600), uint32(604800)) // Apia skipped 30 Dec 2011
	f.Fuzz(func(t *testing.T, spec string, zone uint8, unix int64, span uint32) {
		sched, err := parseSchedule(spec)
		if err != nil || unix < 0 || unix > 4102444800 {
			return
		}
		loc, err := time.LoadLocation(fuzzZones[int(zone)%len(fuzzZones)])
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(unix, 0).UTC()
		next := nextSlot(sched, loc, at)
		if next.IsZero() {
			return
		}
		checkSlot(t, sched, loc, at, next)
		for _, between := range []time.Time{at.Add(next.Sub(at) / 2), next.Add(-time.Second)} {
			if !between.Before(at) {
				if n := nextSlot(sched, loc, between); !n.Equal(next) {
					t.Fatalf("nextSlot(%s) = %s, but nextSlot(%s) = %s", at, next, between, n)
				}
			}
		}
		if after := nextSlot(sched, loc, next); !after.IsZero() {
			checkSlot(t, sched, loc, next, after)
		}
		now := at.Add(time.Duration(span) * time.Second)
		latest := latestSlot(sched, loc, at, now)
		switch {
		case latest.IsZero() && !next.After(now):
			t.Fatalf("no slot in (%s, %s], yet %s is one", at, now, next)
		case latest.IsZero():
		case !latest.After(at) || latest.After(now) || latest.Location() != time.UTC:
			t.Fatalf("latestSlot(%s, %s) = %s", at, now, latest)
		default:
			checkSlot(t, sched, loc, latest.Add(-time.Second), latest)
			if n := nextSlot(sched, loc, latest); !n.IsZero() && !n.After(now) {
				t.Fatalf("latestSlot(%s, %s) = %s, but %s is a later one", at, now, latest, n)
			}
		}
	})
}

// checkSlot fails unless slot is a UTC instant after t whose wall clock in loc the schedule
// matches: in a fixed zone of slot's own offset robfig/cron is exact.
func checkSlot(t *testing.T, sched interface{ Next(time.Time) time.Time }, loc *time.Location, at, slot time.Time) {
	t.Helper()
	if !slot.After(at) || slot.Location() != time.UTC {
		t.Fatalf("slot %s is not a UTC instant after %s", slot, at)
	}
	zoneName, offset := slot.In(loc).Zone()
	fixed := time.FixedZone(zoneName, offset)
	if got := sched.Next(slot.Add(-time.Second).In(fixed)); !got.Equal(slot) {
		t.Fatalf("slot %s (%s in %s) does not match the schedule: it says %s", slot, slot.In(loc), loc, got.In(loc))
	}
}
