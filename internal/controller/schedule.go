package controller

import (
	"time"

	"github.com/robfig/cron/v3"
)

// defaultStartingDeadline applies when spec.startingDeadlineSeconds is unset (the schema defaults it).
const defaultStartingDeadline = time.Hour

// lookBack are the windows, smallest first, in which the latest slot before now is searched. A
// long outage costs a handful of cron evaluations, never one per missed slot; the largest window
// matches robfig/cron's own five-year search horizon.
var lookBack = []time.Duration{
	time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 32 * 24 * time.Hour,
	367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour,
}

// scheduleState is what decides the slots of a policy: its parsed schedule and time zone, the
// last slot it processed and its deadline. It holds no clock: slotsAt takes now.
type scheduleState struct {
	Schedule cron.Schedule
	Location *time.Location
	// Since is status.lastScheduleTime, or the policy's creation time before its first slot.
	Since time.Time
	// Deadline is startingDeadlineSeconds: a slot older than this when reached is skipped.
	Deadline time.Duration
	Suspend  bool
}

// slots are the schedule slots around now, all in UTC.
type slots struct {
	// Due is the latest slot after Since that is at most Deadline old: process it now.
	Due time.Time
	// Missed is the latest slot after Since when it is older than Deadline: it is skipped (and
	// every slot before it with it), never replayed.
	Missed time.Time
	// Next is the first slot after now; zero when suspended or when the schedule never fires again.
	Next time.Time
}

// slotsAt computes the due (or missed) slot and the next slot at now. At most one slot is ever
// due, however long the operator was away. A suspended policy has no slots: its missed ones are
// judged against the deadline once it resumes, as a CronJob's are.
func (s scheduleState) slotsAt(now time.Time) slots {
	if s.Suspend {
		return slots{}
	}
	var out slots
	if latest := latestSlot(s.Schedule, s.Location, s.Since, now); !latest.IsZero() {
		if now.Sub(latest) <= s.Deadline {
			out.Due = latest
		} else {
			out.Missed = latest
		}
	}
	// A policy created "in the future" (clock skew) waits for its first slot after creation.
	from := now
	if s.Since.After(now) {
		from = s.Since
	}
	out.Next = nextSlot(s.Schedule, s.Location, from)
	return out
}

// nextSlot is the first slot strictly after t, in UTC; zero if none within five years.
//
// A slot is an instant whose wall clock in loc matches the schedule: a local time that happens
// twice (the clock goes back) is two slots, one that does not happen (the clock jumps over it) is
// none. robfig/cron searching in loc itself can, around a change of other than one hour, off the
// hour or at midnight (Pacific/Chatham, Australia/Lord_Howe, Antarctica/Troll, America/Santiago),
// return a time at or before t, a time that does not match, or skip a day. So the search runs one
// offset at a time: between two of loc's offset changes loc is a fixed zone, where robfig/cron is
// exact and strictly increasing; a slot found past the change is searched again from the change,
// in the next offset. Elsewhere (Europe/Prague) the slots are the ones robfig/cron finds in loc.
func nextSlot(sched cron.Schedule, loc *time.Location, t time.Time) time.Time {
	// robfig/cron gives up after the year of t+1s plus five; so does the whole search.
	limit := t.Add(time.Second).In(loc).Year() + 5
	// from is where the search starts (Next looks from the second after it), span an instant in
	// the offset searched. Each round moves span to a later offset; maxSpans only bounds the loop.
	from, span := t, t
	for range maxSpans {
		local := span.In(loc)
		if local.Year() > limit {
			return time.Time{}
		}
		name, offset := local.Zone()
		_, end := local.ZoneBounds()
		if !end.IsZero() && !end.After(span) {
			// Away from a change ZoneBounds returns the end of the year, which past the zone's listed
			// transitions (its rule, after 2037), on the last day of a leap year, is at or before
			// span: no change is near, so the offset holds until the next UTC midnight at least.
			end = span.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		}
		next := sched.Next(from.In(time.FixedZone(name, offset)))
		if next.IsZero() || next.In(loc).Year() > limit {
			return time.Time{}
		}
		if end.IsZero() || next.Before(end) {
			return next.UTC()
		}
		// No slot left in this offset: search the next one from the change on.
		from, span = end.Add(-time.Nanosecond), end
	}
	return time.Time{}
}

// maxSpans bounds nextSlot's rounds: five years hold a few dozen offset changes and year ends.
const maxSpans = 1000

// latestSlot is the latest slot in (since, now], in UTC; zero if there is none. Every slot it
// considers comes from nextSlot from a time at or after since, so it is never at or before since.
func latestSlot(sched cron.Schedule, loc *time.Location, since, now time.Time) time.Time {
	if !since.Before(now) {
		return time.Time{}
	}
	for _, window := range lookBack {
		from := now.Add(-window)
		if !from.After(since) {
			from = since
		}
		first := nextSlot(sched, loc, from)
		if first.IsZero() || first.After(now) {
			if from.Equal(since) {
				return time.Time{}
			}
			continue
		}
		// The window holds at least one slot: walk to its last. The first window that holds a slot
		// is only a few times wider than the schedule's period, so this loop stays short.
		latest := first
		for {
			n := nextSlot(sched, loc, latest)
			if n.IsZero() || n.After(now) {
				return latest
			}
			latest = n
		}
	}
	return time.Time{}
}

// intervalWindow is the span whose slots expectedInterval looks at: a week holds every gap of a
// weekly pattern (a weekdays-only schedule's weekend among them).
const intervalWindow = 7 * 24 * time.Hour

// expectedInterval is the largest gap between consecutive slots that start within the week after
// from (a rarer schedule, such as monthly, gives the one gap that starts in it). Slots come from
// nextSlot, so a day that skips or repeats a local time across a daylight-saving change shows up
// as the longer or shorter gap it really is. Zero when the schedule has no two slots.
func expectedInterval(sched cron.Schedule, loc *time.Location, from time.Time) time.Duration {
	end := from.Add(intervalWindow)
	var largest time.Duration
	slot := nextSlot(sched, loc, from)
	for !slot.IsZero() && slot.Before(end) {
		next := nextSlot(sched, loc, slot)
		if next.IsZero() {
			break
		}
		largest = max(largest, next.Sub(slot))
		slot = next
	}
	return largest
}
