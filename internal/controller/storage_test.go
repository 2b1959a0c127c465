package controller

import "testing"

func TestResolveStorage(t *testing.T) {
	id := "workspace0123456789abcdef"
	tests := []struct {
		name         string
		storageType  string
		commonName   string
		legacyExists bool
		want         storageLocation
		wantOK       bool
	}{
		{"absent attribute means common", storageCommon, "", false, storageLocation{"claim-devworkspace", id + "/projects"}, true},
		{"per-user is common", storagePerUser, "", false, storageLocation{"claim-devworkspace", id + "/projects"}, true},
		{"per-workspace", storagePerWorkspace, "", false, storageLocation{"storage-" + id, "projects"}, true},
		{"legacy claim-che-workspace", storageCommon, "", true, storageLocation{"claim-che-workspace", id + "/projects"}, true},
		{"DWOC pvcName wins over legacy", storageCommon, "team-claim", true, storageLocation{"team-claim", id + "/projects"}, true},
		{"per-workspace ignores pvcName", storagePerWorkspace, "team-claim", false, storageLocation{"storage-" + id, "projects"}, true},
		{"ephemeral has none", storageEphemeral, "", false, storageLocation{}, false},
		{"async has none", storageAsync, "", false, storageLocation{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := resolveStorage(workspace{ID: id, StorageType: tt.storageType}, tt.commonName, tt.legacyExists)
			if ok != tt.wantOK || got != tt.want {
				t.Fatalf("resolveStorage = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSharesClaim(t *testing.T) {
	common := workspace{Namespace: "a", StorageType: storageCommon}
	perUser := workspace{Namespace: "a", StorageType: storagePerUser}
	perWS := workspace{Namespace: "a", StorageType: storagePerWorkspace}
	other := workspace{Namespace: "b", StorageType: storageCommon}
	eph := workspace{Namespace: "a", StorageType: storageEphemeral}
	cases := []struct {
		a, b workspace
		want bool
	}{
		{common, perUser, true}, {common, perWS, false}, {common, other, false}, {common, eph, false}, {perWS, perWS, false},
	}
	for i, c := range cases {
		if got := sharesClaim(c.a, c.b); got != c.want {
			t.Errorf("case %d: sharesClaim = %v, want %v", i, got, c.want)
		}
	}
}
