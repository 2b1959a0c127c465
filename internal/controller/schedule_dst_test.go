package controller

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// dstZones have unusual daylight saving rules: 45-minute offsets (Chatham), a 30-minute shift
// (Lord_Howe), a 2-hour shift (Troll), negative DST (Dublin, Casablanca), midnight changes
// (Santiago), half-hour offsets (St_Johns), DST abolished (Tehran); UTC and Prague for reference.
var dstZones = []string{
	"Pacific/Chatham", "Australia/Lord_Howe", "America/Santiago", "Europe/Dublin", "Africa/Casablanca",
	"Asia/Tehran", "America/St_Johns", "Antarctica/Troll", "UTC", "Europe/Prague",
}

// dstSchedules only constrain minute and hour: wallClockMatches relies on it.
var dstSchedules = []string{
	"0 * * * *", "*/30 * * * *", "*/15 * * * *", "30 2 * * *", "0 2 * * *", "45 2 * * *", "0 3 * * *",
}

// wallClockMatches is the definition of a slot, independent of robfig's search: an instant whose
// wall clock in loc has the schedule's minute and hour (the day fields of dstSchedules are *).
func wallClockMatches(spec *cron.SpecSchedule, local time.Time) bool {
	return local.Second() == 0 && local.Nanosecond() == 0 &&
		spec.Minute&(1<<uint(local.Minute())) != 0 && spec.Hour&(1<<uint(local.Hour())) != 0
}

// zoneTransitions are the instants in [from, to) at which loc's offset changes, found by looking
// at the offset every hour (not with ZoneBounds, which nextSlot uses) and bisecting to the second.
func zoneTransitions(loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		lo, hi := t, t.Add(time.Hour)
		if offsetAt(lo, loc) == offsetAt(hi, loc) {
			continue
		}
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2)
			if offsetAt(mid, loc) == offsetAt(lo, loc) {
				lo = mid
			} else {
				hi = mid
			}
		}
		out = append(out, hi)
	}
	return out
}

func offsetAt(t time.Time, loc *time.Location) int {
	_, off := t.In(loc).Zone()
	return off
}

func describe(t time.Time, loc *time.Location) string {
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), t.In(loc).Format("2006-01-02 15:04:05 -07:00"))
}

// wallClockSlots are the slots in [from, to) by definition: every minute whose wall clock matches.
func wallClockSlots(spec *cron.SpecSchedule, loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	for m := from.Truncate(time.Minute); m.Before(to); m = m.Add(time.Minute) {
		if !m.Before(from) && wallClockMatches(spec, m.In(loc)) {
			out = append(out, m)
		}
	}
	return out
}

// walkSlots calls nextSlot from from, then from each slot it returns, until past to: every slot
// must be strictly after the previous one, and in UTC.
func walkSlots(t *testing.T, s scheduleState, from, to time.Time) []time.Time {
	t.Helper()
	var out []time.Time
	for prev := from; ; {
		next := nextSlot(s.Schedule, s.Location, prev)
		switch {
		case next.IsZero():
			t.Fatalf("no slot after %s", describe(prev, s.Location))
		case !next.After(prev):
			t.Fatalf("nextSlot(%s) = %s: not after it", describe(prev, s.Location), describe(next, s.Location))
		case next.Location() != time.UTC:
			t.Fatalf("nextSlot(%s) = %s is not in UTC", describe(prev, s.Location), next)
		case !next.Before(to):
			return out
		}
		out = append(out, next)
		prev = next
	}
}

// equalSlots reports the first difference between got and want.
func equalSlots(t *testing.T, what string, got, want []time.Time, loc *time.Location) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !got[i].Equal(want[i]) {
			t.Errorf("%s: slot %s, want %s", what, describe(got[i], loc), describe(want[i], loc))
			return
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d slots, want %d", what, len(got), len(want))
	}
}

// TestSlotsAcrossDST walks two years of slots in zones with unusual DST rules: slots strictly
// increase, around every offset change they are exactly the instants whose wall clock matches,
// and a processed slot (Since) is never due or missed again, whenever the reconciler wakes.
func TestSlotsAcrossDST(t *testing.T) {
	start := utc("2026-01-01T00:00:00Z")
	end := start.AddDate(2, 0, 0)
	for _, zone := range dstZones {
		loc := mustZone(t, zone)
		transitions := zoneTransitions(loc, start, end)
		for _, spec := range dstSchedules {
			t.Run(zone+" "+spec, func(t *testing.T) {
				s := mustSchedule(t, spec)
				s.Location = loc
				walked := walkSlots(t, s, start, end)
				// index is the position of the first walked slot after t.
				index := func(t time.Time) int {
					i, _ := slices.BinarySearchFunc(walked, t, func(slot, t time.Time) int {
						if slot.After(t) {
							return 1
						}
						return -1
					})
					return i
				}
				near := make([]bool, len(walked))
				for _, tr := range transitions {
					// The slots in a day either side of the change are every matching minute.
					from, to := tr.Add(-26*time.Hour), tr.Add(26*time.Hour)
					lo, hi := index(from.Add(-time.Nanosecond)), index(to.Add(-time.Nanosecond))
					equalSlots(t, "around "+describe(tr, loc), walked[lo:hi],
						wallClockSlots(s.Schedule.(*cron.SpecSchedule), loc, from, to), loc)
					for i := lo; i < hi; i++ {
						near[i] = true
					}

					// The reconciler waking every minute within 3 hours of the change: with the
					// latest slot processed nothing is due, with the one before it that latest slot is;
					// the next slot is the walked one.
					for now := tr.Add(-3 * time.Hour); now.Before(tr.Add(3 * time.Hour)); now = now.Add(time.Minute) {
						i := index(now)
						if i < 2 || i == len(walked) {
							continue
						}
						checkSlotsAt(t, s, walked[i-1], now, time.Time{}, walked[i], loc)
						checkSlotsAt(t, s, walked[i-2], now, walked[i-1], walked[i], loc)
					}
				}

				// A second after a slot, with that slot processed: every slot within a day of a
				// change, and a sample of the others.
				for i, slot := range walked[:len(walked)-1] {
					if near[i] || i%97 == 0 {
						checkSlotsAt(t, s, slot, slot.Add(time.Second), time.Time{}, walked[i+1], loc)
					}
				}
			})
		}
	}
}

// TestNextSlotAtLeapYearEnd: past its listed transitions a zone follows its rule, and there
// time.ZoneBounds ends the offset at the end of the year, which on 31 December of a leap year is
// at or before the time asked. Slots go on regardless.
func TestNextSlotAtLeapYearEnd(t *testing.T) {
	from, to := utc("2040-12-30T00:00:00Z"), utc("2041-01-02T00:00:00Z")
	for _, zone := range []string{"Europe/Prague", "Pacific/Chatham", "Australia/Lord_Howe", "America/Santiago", "UTC"} {
		for _, spec := range []string{"*/15 * * * *", "0 3 * * *"} {
			t.Run(zone+" "+spec, func(t *testing.T) {
				s := mustSchedule(t, spec)
				s.Location = mustZone(t, zone)
				equalSlots(t, "2040-12-30 to 2041-01-02", walkSlots(t, s, from.Add(-time.Nanosecond), to),
					wallClockSlots(s.Schedule.(*cron.SpecSchedule), s.Location, from, to), s.Location)
			})
		}
	}
}

// checkSlotsAt evaluates s at now with since processed: the slot due or missed is latest (zero:
// none), never one at or before since, and the next slot is next.
func checkSlotsAt(t *testing.T, s scheduleState, since, now, latest, next time.Time, loc *time.Location) {
	t.Helper()
	s.Since = since
	got := s.slotsAt(now)
	at := func() string { return fmt.Sprintf("at %s, Since %s", describe(now, loc), describe(since, loc)) }
	for _, slot := range []time.Time{got.Due, got.Missed} {
		switch {
		case slot.IsZero():
		case !slot.After(since):
			t.Errorf("%s: slot %s is not after Since: processed again", at(), describe(slot, loc))
		case !slot.Equal(latest):
			t.Errorf("%s: slot %s, want %s", at(), describe(slot, loc), describe(latest, loc))
		}
	}
	if !latest.IsZero() && got.Due.IsZero() && got.Missed.IsZero() {
		t.Errorf("%s: no slot, want %s", at(), describe(latest, loc))
	}
	if !got.Next.Equal(next) {
		t.Errorf("%s: Next %s, want %s", at(), describe(got.Next, loc), describe(next, loc))
	}
}
