package mover

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The backup time in the manifest comes from --created, else from a time that
// is a whole "-"-separated segment of the tag, else it is left out: never the
// clock, so the same tree and arguments always give the same manifest digest
// (a Job retried after a partial push puts the bytes it put before).
func TestManifestCreatedTime(t *testing.T) {
	reg, src := registryAndTree(t)
	flagTime := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		tag     string
		created time.Time // --created
		want    string    // "" = no created annotations
	}{
		{"20261126T020000Z", time.Time{}, "2026-11-26T02:00:00Z"},
		{"nightly-20261126T020000Z", time.Time{}, "2026-11-26T02:00:00Z"},
		{"20261126T020000Z-a1b2c3", time.Time{}, "2026-11-26T02:00:00Z"},
		{"manual-20261126T020000Z-0123456789abcdef", time.Time{}, "2026-11-26T02:00:00Z"},
		{"manual-a1b2c3", time.Time{}, ""},
		{"x20261126T020000Z", time.Time{}, ""},
		{"20261126T020000Z1-a", time.Time{}, ""},
		{"20261326T020000Z", time.Time{}, ""}, // month 13: not a time
		{"nightly-20261126T020000Z", flagTime, "2027-01-02T03:04:05Z"},
		{"manual-a1b2c3", flagTime, "2027-01-02T03:04:05Z"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s created=%v", tt.tag, !tt.created.IsZero()), func(t *testing.T) {
			digests := make([]string, 0, 2)
			for run := range 2 { // two repositories: nothing is shared but the arguments
				o := backupOpts(reg.Host, src, tt.tag)
				o.Repository = fmt.Sprintf("%s/created%d/run%d/ws", reg.Host, i, run)
				o.Created = tt.created
				res := mustSucceed(t, Backup(context.Background(), o))
				digests = append(digests, res.Digest)
				ann := manifestAt(t, res.Reference).Annotations
				for _, key := range []string{AnnotationCreated, AnnotationCreatedOC} {
					if got, ok := ann[key]; got != tt.want || ok != (tt.want != "") {
						t.Errorf("%s = %q (present %v), want %q", key, got, ok, tt.want)
					}
				}
			}
			if digests[0] != digests[1] {
				t.Errorf("same tree and arguments gave manifests %s and %s", digests[0], digests[1])
			}
		})
	}
}
