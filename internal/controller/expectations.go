package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// expectations is everything this process remembers that the API server already knows but the
// manager's cache may not show yet, in one place. Each entry saves refused writes or repeated
// work while the cache lags behind the process's own writes; losing all of it on a restart costs
// at most one repeated step per object, never a duplicate or a lost backup, because the status of
// each object is the record. An entry is forgotten as soon as the cache catches up, or when its
// object is gone.
type expectations struct {
	mu sync.Mutex
	// admitted holds, per policy, the backups the throttle let start whose Running status the
	// cache may not show yet (throttle.go), so a lagging cache never over-admits.
	admitted map[string]map[types.UID]bool
	// started holds the backups patched Running whose cached copy may still read Pending: acting
	// on that copy would start them again (refused creates, a conflicting status patch).
	started map[types.UID]bool
	// cleaned holds the finished backups whose clean-up is done, so the reconciles that follow
	// (their own final status patch, the Job's deletion) do not repeat it.
	cleaned map[types.UID]bool
	// processed holds the last slot each policy processed, while the cache may still show the
	// previous lastScheduleTime.
	processed map[types.UID]time.Time
}

func newExpectations() *expectations {
	return &expectations{admitted: map[string]map[types.UID]bool{}, started: map[types.UID]bool{},
		cleaned: map[types.UID]bool{}, processed: map[types.UID]time.Time{}}
}

// expectStarted records a backup patched Running.
func (e *expectations) expectStarted(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.started[uid] = true
}

// startNotSeen reports a backup patched Running whose cached copy still reads Pending
// (cachedPending); it forgets the backup once the cache shows it Running or later.
func (e *expectations) startNotSeen(uid types.UID, cachedPending bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started[uid] {
		return false
	}
	if cachedPending {
		return true
	}
	delete(e.started, uid)
	return false
}

// markCleaned records a finished backup whose clean-up is done; isCleaned tells.
func (e *expectations) markCleaned(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleaned[uid] = true
}

func (e *expectations) isCleaned(uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cleaned[uid]
}

// markProcessed records the slot a policy processed; processedSlot returns it (zero if none).
func (e *expectations) markProcessed(uid types.UID, slot time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.processed[uid] = slot
}

func (e *expectations) processedSlot(uid types.UID) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.processed[uid]
}

// forget drops everything remembered about a backup that is gone (or being deleted).
func (e *expectations) forget(policy string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.admitted[policy], uid)
	delete(e.started, uid)
	delete(e.cleaned, uid)
}
