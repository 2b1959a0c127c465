package controller

import "testing"

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
