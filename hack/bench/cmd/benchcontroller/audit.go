package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the count needs.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// Phases of the manager run the writes are split into.
const (
	phaseCreation = iota // the slot: until the WorkspaceBackups exist and the first Jobs run
	phaseDrain           // the drained backups' Jobs end and the next ones start
	numPhases
)

// writeCounts are the manager's API writes by resource ("workspacebackups/status") and phase,
// and, per WorkspaceBackup, the writes to it (object and status) over the whole run.
type writeCounts struct {
	byResource [numPhases]map[string]int
	verbs      map[string]map[string]int // resource -> verb -> count, whole run
	perBackup  map[string]int            // namespace/name -> writes to that WorkspaceBackup
	failed     int                       // writes the API server refused (AlreadyExists, conflicts)
}

// countWrites reads the audit log and counts the completed writes of user.
func countWrites(path, user string, mgr managerResult) (writeCounts, error) {
	wc := writeCounts{verbs: map[string]map[string]int{}, perBackup: map[string]int{}}
	for i := range wc.byResource {
		wc.byResource[i] = map[string]int{}
	}
	f, err := os.Open(path)
	if err != nil {
		return wc, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return wc, fmt.Errorf("%s: %w", path, err)
		}
		if ev.User.Username == user && ev.Stage == "ResponseComplete" && ev.ObjectRef != nil {
			wc.add(ev, mgr.createEnd)
		}
	}
	return wc, sc.Err()
}

func (wc *writeCounts) add(ev auditEvent, createEnd time.Time) {
	ref := ev.ObjectRef
	resource := ref.Resource
	if ref.Subresource != "" {
		resource += "/" + ref.Subresource
	}
	phase := phaseCreation
	if ev.StageTimestamp.After(createEnd) {
		phase = phaseDrain
	}
	wc.byResource[phase][resource]++
	if wc.verbs[resource] == nil {
		wc.verbs[resource] = map[string]int{}
	}
	wc.verbs[resource][ev.Verb]++
	if ref.Resource == "workspacebackups" {
		wc.perBackup[ref.Namespace+"/"+ref.Name]++
	}
	if ev.ResponseStatus != nil && ev.ResponseStatus.Code >= 300 {
		wc.failed++
	}
}
