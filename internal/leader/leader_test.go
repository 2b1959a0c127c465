/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package leader

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func parseFlags(t *testing.T, args ...string) Flags {
	t.Helper()
	var f Flags
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	f.Bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFlags(t *testing.T) {
	def := parseFlags(t)
	if want := (Flags{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second,
		RetryPeriod: 2 * time.Second}); def != want {
		t.Errorf("defaults = %+v, want controller-runtime's %+v (docs/admin.md)", def, want)
	}
	if err := def.Validate(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}

	for _, tc := range []struct {
		args []string
		err  string // "" when valid
	}{
		{[]string{"--leader-elect", "--leader-elect-lease-duration=30s", "--leader-elect-renew-deadline=20s",
			"--leader-elect-retry-period=5s"}, ""},
		{[]string{"--leader-elect-lease-duration=10s"},
			"--leader-elect-lease-duration (10s) must be more than --leader-elect-renew-deadline (10s)"},
		{[]string{"--leader-elect-renew-deadline=2400ms"},
			"--leader-elect-renew-deadline (2.4s) must be more than 1.2 times"},
		{[]string{"--leader-elect-retry-period=0s"}, "--leader-elect-retry-period must be positive"},
	} {
		err := parseFlags(t, tc.args...).Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.err)
		}
	}
}

func TestIdentity(t *testing.T) {
	for _, tc := range []struct{ pod, host, want string }{
		{"manager-b-7d9f-x2x4q", "node-1", "manager-b-7d9f-x2x4q_u1"},
		{"", "node-1", "node-1_u1"},
	} {
		if got := identity(tc.pod, tc.host, "u1"); got != tc.want {
			t.Errorf("identity(%q, %q) = %q, want %q", tc.pod, tc.host, got, tc.want)
		}
	}
}
