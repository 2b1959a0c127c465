package controller

import (
	"testing"
	"time"
)

func mustSchedule(t *testing.T, spec string) scheduleState {
	t.Helper()
	sched, err := parseSchedule(spec)
	if err != nil {
		t.Fatalf("parseSchedule(%q): %v", spec, err)
	}
	return scheduleState{Schedule: sched, Location: time.UTC, Deadline: defaultStartingDeadline}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := loadTimeZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSlotsAt(t *testing.T) {
	prague := mustZone(t, "Europe/Prague")
	tests := []struct {
		name       string
		schedule   string
		loc        *time.Location
		since, now string
		deadline   time.Duration // 0 = default
		suspend    bool
		wantDue    string
		wantMissed string
		wantNext   string
	}{
		{name: "hourly, between slots", schedule: "@hourly", since: "2026-11-26T10:00:00Z", now: "2026-11-26T10:30:00Z",
			wantNext: "2026-11-26T11:00:00Z"},
		{name: "hourly, slot just reached", schedule: "@hourly", since: "2026-11-26T10:00:00Z", now: "2026-11-26T11:00:00Z",
			wantDue: "2026-11-26T11:00:00Z", wantNext: "2026-11-26T12:00:00Z"},
		{name: "hourly, slot already processed", schedule: "@hourly", since: "2026-11-26T11:00:00Z", now: "2026-11-26T11:00:10Z",
			wantNext: "2026-11-26T12:00:00Z"},
		{name: "daily", schedule: "@daily", since: "2026-11-25T00:00:00Z", now: "2026-11-26T00:10:00Z",
			wantDue: "2026-11-26T00:00:00Z", wantNext: "2026-11-27T00:00:00Z"},
		{name: "daily, new policy waits for its first slot", schedule: "@daily", since: "2026-11-26T09:00:00Z", now: "2026-11-26T09:00:01Z",
			wantNext: "2026-11-27T00:00:00Z"},
		{name: "3-hour outage: only the latest slot, within the deadline", schedule: "@hourly",
			since: "2026-11-26T10:00:00Z", now: "2026-11-26T13:20:00Z",
			wantDue: "2026-11-26T13:00:00Z", wantNext: "2026-11-26T14:00:00Z"},
		{name: "3-hour outage: latest slot older than the deadline is skipped", schedule: "@hourly", deadline: 10 * time.Minute,
			since: "2026-11-26T10:00:00Z", now: "2026-11-26T13:20:00Z",
			wantMissed: "2026-11-26T13:00:00Z", wantNext: "2026-11-26T14:00:00Z"},
		{name: "daily slot missed during a long outage", schedule: "0 2 * * *",
			since: "2026-11-20T02:00:00Z", now: "2026-11-26T09:00:00Z",
			wantMissed: "2026-11-26T02:00:00Z", wantNext: "2026-11-27T02:00:00Z"},
		{name: "every minute, a year away: found without replaying", schedule: "* * * * *",
			since: "2025-11-26T00:00:00Z", now: "2026-11-26T09:00:30Z",
			wantDue: "2026-11-26T09:00:00Z", wantNext: "2026-11-26T09:01:00Z"},
		{name: "suspended: nothing due, nothing next", schedule: "@hourly", suspend: true,
			since: "2026-11-26T10:00:00Z", now: "2026-11-26T11:00:05Z"},
		{name: "time zone: 02:00 Prague in winter is 01:00 UTC", schedule: "0 2 * * *", loc: prague,
			since: "2026-11-25T01:00:00Z", now: "2026-11-26T01:00:00Z",
			wantDue: "2026-11-26T01:00:00Z", wantNext: "2026-11-27T01:00:00Z"},
		{name: "time zone: 02:00 Prague in summer is 00:00 UTC", schedule: "0 2 * * *", loc: prague,
			since: "2026-07-01T00:00:00Z", now: "2026-07-01T12:00:00Z", wantNext: "2026-07-02T00:00:00Z"},
		{name: "creation ahead of the clock (skew): wait for the first slot after creation", schedule: "@hourly",
			since: "2026-11-26T10:30:00Z", now: "2026-11-26T09:00:00Z", wantNext: "2026-11-26T11:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchedule(t, tt.schedule)
			if tt.loc != nil {
				s.Location = tt.loc
			}
			if tt.deadline != 0 {
				s.Deadline = tt.deadline
			}
			s.Since, s.Suspend = utc(tt.since), tt.suspend
			got := s.slotsAt(utc(tt.now))
			check := func(what string, got time.Time, want string) {
				t.Helper()
				if want == "" && !got.IsZero() {
					t.Errorf("%s = %s, want none", what, got)
				}
				if want != "" && !got.Equal(utc(want)) {
					t.Errorf("%s = %s, want %s", what, got, want)
				}
				if !got.IsZero() && got.Location() != time.UTC {
					t.Errorf("%s = %s is not in UTC", what, got)
				}
			}
			check("Due", got.Due, tt.wantDue)
			check("Missed", got.Missed, tt.wantMissed)
			check("Next", got.Next, tt.wantNext)
		})
	}
}

// runSchedule plays the reconciler's part from start to end, waking every step: a due slot is
// processed, a missed one skipped, and either becomes the new lastScheduleTime. It returns the
// processed slots and the number of skipped ones. s.Since is the lastScheduleTime before start.
func runSchedule(s scheduleState, start, end time.Time, step time.Duration) (processed []time.Time, skipped int) {
	for now := start; !now.After(end); now = now.Add(step) {
		got := s.slotsAt(now)
		switch {
		case !got.Due.IsZero():
			processed = append(processed, got.Due)
			s.Since = got.Due
		case !got.Missed.IsZero():
			skipped++
			s.Since = got.Missed
		}
	}
	return processed, skipped
}

func TestOutageProcessesAtMostOneSlot(t *testing.T) {
	for _, tt := range []struct {
		name     string
		deadline time.Duration
		want     int
	}{
		{name: "deadline 1h: the latest slot runs once", deadline: time.Hour, want: 1},
		{name: "deadline 4m: the latest slot (13:15) is too old at 13:20, none runs", deadline: 4 * time.Minute, want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchedule(t, "*/15 * * * *")
			s.Deadline = tt.deadline
			// The operator was down from 10:00 to 13:20: twelve slots passed.
			s.Since = utc("2026-11-26T10:00:00Z")
			// It comes back at 13:20 and wakes every minute until just before the next slot.
			processed, _ := runSchedule(s, utc("2026-11-26T13:20:00Z"), utc("2026-11-26T13:29:00Z"), time.Minute)
			if len(processed) != tt.want {
				t.Fatalf("processed %v after the outage, want %d slot(s)", processed, tt.want)
			}
			if tt.want == 1 && !processed[0].Equal(utc("2026-11-26T13:15:00Z")) {
				t.Errorf("processed %s, want the latest slot 13:15", processed[0])
			}
		})
	}
}

func TestDSTSlotNamesStayUniqueAndUTC(t *testing.T) {
	prague := mustZone(t, "Europe/Prague")
	for _, tt := range []struct {
		name       string
		schedule   string
		start, end string
		want       []string // slotSuffix of every processed slot
	}{
		{name: "hourly across the autumn change: 02:00 local twice, two UTC names", schedule: "0 * * * *",
			start: "2026-10-24T22:30:00Z", end: "2026-10-25T02:30:00Z",
			want: []string{"202610242300", "202610250000", "202610250100", "202610250200"}},
		{name: "hourly across the spring change: 02:00 local does not exist", schedule: "0 * * * *",
			start: "2026-03-28T23:30:00Z", end: "2026-03-29T02:30:00Z",
			want: []string{"202603290000", "202603290100", "202603290200"}},
		{name: "daily 02:30 local: runs twice on the autumn day (robfig/cron, like a CronJob)", schedule: "30 2 * * *",
			start: "2026-10-24T00:00:00Z", end: "2026-10-26T12:00:00Z",
			want: []string{"202610240030", "202610250030", "202610250130", "202610260130"}},
		{name: "daily 02:30 local: skipped on the spring day", schedule: "30 2 * * *",
			start: "2026-03-27T12:00:00Z", end: "2026-03-30T12:00:00Z",
			want: []string{"202603280130", "202603300030"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchedule(t, tt.schedule)
			s.Location, s.Since = prague, utc(tt.start)
			processed, skipped := runSchedule(s, utc(tt.start), utc(tt.end), 5*time.Minute)
			if skipped != 0 {
				t.Errorf("skipped %d slots, want none", skipped)
			}
			var names []string
			seen := map[string]bool{}
			for _, slot := range processed {
				name := slotSuffix(slot)
				if seen[name] {
					t.Errorf("slot name %s used twice", name)
				}
				seen[name] = true
				names = append(names, name)
			}
			if len(names) != len(tt.want) {
				t.Fatalf("slots %v, want %v", names, tt.want)
			}
			for i := range names {
				if names[i] != tt.want[i] {
					t.Fatalf("slots %v, want %v", names, tt.want)
				}
			}
		})
	}
}

func TestRequeueAt(t *testing.T) {
	now := utc("2026-11-26T10:00:00Z")
	for _, tt := range []struct {
		name    string
		next    time.Time
		recheck bool
		want    time.Duration
	}{
		{name: "next slot", next: now.Add(50 * time.Minute), want: 50 * time.Minute},
		{name: "next slot, capped by the registry re-check", next: now.Add(50 * time.Minute), recheck: true, want: registryRecheck},
		{name: "next slot sooner than the re-check", next: now.Add(time.Minute), recheck: true, want: time.Minute},
		{name: "no next slot (suspended)", want: 0},
		{name: "no next slot, re-check", recheck: true, want: registryRecheck},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := requeueAt(now, tt.next, tt.recheck).RequeueAfter; got != tt.want {
				t.Errorf("RequeueAfter = %s, want %s", got, tt.want)
			}
		})
	}
}
