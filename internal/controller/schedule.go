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

// nextSlot is the first slot strictly after t in loc, in UTC; zero if none within five years.
func nextSlot(sched cron.Schedule, loc *time.Location, t time.Time) time.Time {
	next := sched.Next(t.In(loc))
	if next.IsZero() {
		return time.Time{}
	}
	return next.UTC()
}

// latestSlot is the latest slot in (since, now], in UTC; zero if there is none.
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
