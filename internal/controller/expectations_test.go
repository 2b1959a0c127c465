package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestExpectationsStartedUntilTheCacheCatchesUp(t *testing.T) {
	e := newExpectations()
	if e.startNotSeen("b", true) {
		t.Fatal("a backup never started is not expected")
	}
	e.expectStarted("b")
	if !e.startNotSeen("b", true) {
		t.Fatal("a started backup whose cached copy reads Pending must be skipped")
	}
	if e.startNotSeen("b", false) {
		t.Fatal("the cache shows it Running: carry on")
	}
	if e.startNotSeen("b", true) {
		t.Fatal("once seen, the expectation is forgotten")
	}
}

func TestExpectationsForget(t *testing.T) {
	e := newExpectations()
	e.expectStarted("b")
	e.markCleaned("b")
	e.admitted["nightly"] = map[types.UID]bool{}
	e.admitted["nightly"]["b"] = true
	e.markCleaned("other")
	e.forget("nightly", "b")
	if e.isCleaned("b") || e.startNotSeen("b", true) || e.admitted["nightly"]["b"] {
		t.Fatal("forget left something of the deleted backup")
	}
	if !e.isCleaned("other") {
		t.Fatal("forget dropped another backup")
	}
}

func TestExpectationsProcessedSlot(t *testing.T) {
	e := newExpectations()
	if !e.processedSlot("p").IsZero() {
		t.Fatal("no slot processed yet")
	}
	slot := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	e.markProcessed("p", slot)
	if got := e.processedSlot("p"); !got.Equal(slot) {
		t.Fatalf("processedSlot = %v, want %v", got, slot)
	}
}
