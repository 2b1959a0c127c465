package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// terminalError ends a backup or restore with a reason: it is recorded once and never retried.
// Every other error is transient and retried with backoff.
type terminalError struct{ reason, message string }

func (e *terminalError) Error() string { return e.reason + ": " + e.message }

func terminalf(reason, format string, args ...any) error {
	return &terminalError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// asTerminal returns the terminal error in err's chain, if any.
func asTerminal(err error) (*terminalError, bool) {
	return errors.AsType[*terminalError](err)
}

// launchRetryWindow is how long transient errors may keep a mover from launching before the
// backup or restore fails: a refusal that persists must not hold a concurrency slot forever.
const launchRetryWindow = 2 * time.Minute

// launchRetries remembers when a backup or restore first failed to launch with a transient error.
// Lost on restart: the window then starts again, which only delays the failure.
type launchRetries struct {
	mu    sync.Mutex
	first map[types.UID]time.Time
}

// giveUp records a transient failure at now and reports whether the window has passed.
func (l *launchRetries) giveUp(uid types.UID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first == nil {
		l.first = map[types.UID]time.Time{}
	}
	first, ok := l.first[uid]
	if !ok {
		l.first[uid] = now
		return false
	}
	return now.Sub(first) > launchRetryWindow
}

func (l *launchRetries) forget(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.first, uid)
}

// givenUp is the terminal error for a transient error that lasted longer than launchRetryWindow:
// the registry's reason when the registry failed, else JobRefused.
func givenUp(err error, what string) *terminalError {
	reason := string(registry.ReasonOf(err))
	if reason == "" {
		reason = backupv1alpha1.ReasonJobRefused
	}
	return &terminalError{reason: reason, message: fmt.Sprintf("%s kept failing for %s: %v", what, launchRetryWindow, err)}
}

// refusedForGood reports an API answer that a retry of the same request cannot change: an
// admission webhook or ValidatingAdmissionPolicy denial, a ResourceQuota, an invalid object.
func refusedForGood(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsMethodNotSupported(err) ||
		apierrors.IsNotAcceptable(err) || apierrors.IsUnsupportedMediaType(err)
}

// ownedBy reports whether obj was made for owner: a controller reference to owner's UID and the
// owner-UID label. Anything else in the namespace, whatever its name, is someone else's.
func ownedBy(obj, owner metav1.Object) bool {
	return metav1.IsControlledBy(obj, owner) && obj.GetLabels()[labelOwnerUID] == string(owner.GetUID())
}

// moverLaunch is what a backup or restore needs to start its mover Job.
type moverLaunch struct {
	Owner   client.Object // WorkspaceBackup or WorkspaceRestore
	JobName string
	// Credentials makes the Secret the Job mounts (a copy owned by Owner, or the namespace's own).
	Credentials func() (credentials, error)
	// Build returns the Job for those credentials.
	Build func(credentials) *batchv1.Job
}

// launchMover creates the mover Job, or adopts the one this owner created before (a status patch
// lost to a restart). A Job of that name that is not the owner's is never adopted, mounted or
// deleted: the launch fails with JobConflict. A refusal by the API server (admission, quota, an
// invalid job override) fails with JobRefused and the API's message.
func launchMover(ctx context.Context, c client.Client, reader client.Reader, l moverLaunch) (*batchv1.Job, error) {
	ns := l.Owner.GetNamespace()
	// The cache holds the operator's Jobs: one made by an earlier attempt is adopted without a new
	// Secret copy. Anything else of that name shows up as AlreadyExists below.
	existing := &batchv1.Job{}
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: l.JobName}, existing)
	switch {
	case err == nil:
		return adoptJob(existing, l.Owner)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get Job %s/%s: %w", ns, l.JobName, err)
	}
	creds, err := l.Credentials()
	if err != nil {
		return nil, refusal(err, "Secret copy")
	}
	job := l.Build(creds)
	if err := controllerutil.SetControllerReference(l.Owner, job, c.Scheme()); err != nil {
		return nil, err
	}
	err = c.Create(ctx, job)
	if err == nil {
		return job, nil
	}
	// The Job mounts nothing else: its Secret copy goes with the failed attempt.
	cleanErr := deleteCredentialsCopy(ctx, c, ns, creds)
	if apierrors.IsAlreadyExists(err) {
		existing = &batchv1.Job{}
		if err := reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: l.JobName}, existing); err != nil {
			return nil, errors.Join(fmt.Errorf("mover Job %s/%s exists but cannot be read: %w", ns, l.JobName, err), cleanErr)
		}
		job, err := adoptJob(existing, l.Owner)
		return job, errors.Join(err, cleanErr)
	}
	return nil, errors.Join(refusal(fmt.Errorf("create mover Job %s/%s: %w", ns, l.JobName, err), "Job"), cleanErr)
}

// adoptJob returns job when owner made it, else the JobConflict failure.
func adoptJob(job *batchv1.Job, owner client.Object) (*batchv1.Job, error) {
	if ownedBy(job, owner) {
		return job, nil
	}
	return nil, terminalf(backupv1alpha1.ReasonJobConflict,
		"a Job named %s that this %s did not create exists in namespace %s; it is left alone: delete it, or create the %s under another name",
		job.Name, kindOf(owner), job.Namespace, kindOf(owner))
}

// refusal turns a permanent API refusal into the terminal JobRefused error; other errors pass.
func refusal(err error, what string) error {
	if _, ok := asTerminal(err); ok || !refusedForGood(err) {
		return err
	}
	return terminalf(backupv1alpha1.ReasonJobRefused, "the API server refused the mover's %s: %v", what, err)
}

// kindOf names a WorkspaceBackup or WorkspaceRestore for messages.
func kindOf(obj client.Object) string {
	if _, ok := obj.(*backupv1alpha1.WorkspaceRestore); ok {
		return "WorkspaceRestore"
	}
	return "WorkspaceBackup"
}

// stopMoverJob deletes owner's Job while it runs (with a UID precondition, and only when it is
// the owner's); a finished Job stays for kubectl logs. Every terminal path of a backup or restore
// calls it, so no mover keeps holding a volume unsupervised.
func stopMoverJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, name string) error {
	if name == "" {
		return nil
	}
	job, err := getJob(ctx, c, reader, owner.GetNamespace(), name)
	if err != nil || job == nil || !ownedBy(job, owner) || !job.DeletionTimestamp.IsZero() {
		return err
	}
	if state, _ := jobStateOf(job); state != jobActive {
		return nil
	}
	return deleteJob(ctx, c, job)
}

// deleteOwnedJob deletes owner's Job whatever its state (after a success it is no longer needed).
func deleteOwnedJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, name string) error {
	if name == "" {
		return nil
	}
	job, err := getJob(ctx, c, reader, owner.GetNamespace(), name)
	if err != nil || job == nil || !ownedBy(job, owner) || !job.DeletionTimestamp.IsZero() {
		return err
	}
	return deleteJob(ctx, c, job)
}
