package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func TestChildName(t *testing.T) {
	long := strings.Repeat("w", 60)
	tests := []struct {
		name  string
		parts []string
		want  string
	}{
		{"short stays as is", []string{"my-ws", "nightly", "202611260200"}, "my-ws-nightly-202611260200"},
		{"exactly 63 stays", []string{strings.Repeat("a", 63)}, strings.Repeat("a", 63)},
		{"long is cut with a hash", []string{long, "nightly", "202611260200"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := childName(tt.parts...)
			if len(got) > maxNameLength {
				t.Fatalf("childName = %q (%d chars), want <= 63", got, len(got))
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("childName = %q, want %q", got, tt.want)
			}
			if got != childName(tt.parts...) {
				t.Fatalf("childName is not deterministic")
			}
		})
	}
	a := childName(long, "nightly", "202611260200")
	b := childName(long, "nightly", "202611260300")
	if a == b {
		t.Fatalf("two slots of a long workspace name collide: %q", a)
	}
	if strings.HasSuffix(strings.TrimSuffix(a, a[len(a)-10:]), "--") {
		t.Fatalf("name %q has a doubled dash", a)
	}
}

func TestArtifactTag(t *testing.T) {
	prague, _ := time.LoadLocation("Europe/Prague")
	at := time.Date(2026, 11, 26, 3, 0, 0, 0, prague)
	if got := artifactTag(at, ""); got != "20261126T020000Z" {
		t.Fatalf("artifactTag = %q, want UTC 20261126T020000Z", got)
	}
	if got := artifactTag(at, "a1b2c3"); got != "20261126T020000Z-a1b2c3" {
		t.Fatalf("artifactTag with suffix = %q", got)
	}
	if got := slotSuffix(at); got != "202611260200" {
		t.Fatalf("slotSuffix = %q", got)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
