package controller

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// The mover lifecycle that backups and restores share: launch the Job with its credentials
// (adopting only the one this owner made), follow it, stop it when the developer needs the
// workspace, read its result, clean up. Each reconciler keeps only what differs: what the mover
// runs and how the outcome is recorded (docs/architecture.md, "Control flow").

// moverLifecycle runs the mover Jobs of one reconciler.
type moverLifecycle struct {
	client  client.Client
	reader  client.Reader // uncached: Secrets, Events, a Job created a moment ago
	opts    Options
	retries launchRetries
}

// moverRun is what differs between a backup and a restore: the owner, its policy and workspace,
// the storage it mounts and the mover command line.
type moverRun struct {
	Owner     client.Object // WorkspaceBackup or WorkspaceRestore
	Policy    *backupv1alpha1.BackupPolicy
	Workspace workspace
	Storage   resolvedStorage
	JobName   string
	// ReadOnly mounts the claim read-only (backups).
	ReadOnly bool
	// Args is the mover command line for the credentials the Job mounts.
	Args func(creds credentials) []string
}

// launch creates the mover Job with its credentials, pinned to the node the volume is attached to
// and running as the workspaces' user (the policy's podSecurityContext wins over DWO's), or adopts
// the Job this owner created before. Transient errors come back for a retry until
// launchRetryWindow has passed; then, like refusals, they are terminal.
func (l *moverLifecycle) launch(ctx context.Context, run moverRun) (*batchv1.Job, error) {
	node, err := attachedNode(ctx, l.client, l.reader, run.Storage.pvc)
	if err != nil {
		return nil, l.retryOrGiveUp(run.Owner.GetUID(), err, "finding the node of the workspace's volume")
	}
	psc := run.Storage.dwo.PodSecurityContext
	if run.Policy.Spec.Job.PodSecurityContext != nil {
		psc = run.Policy.Spec.Job.PodSecurityContext
	}
	job, err := launchMover(ctx, l.client, l.reader, moverLaunch{
		Owner: run.Owner, JobName: run.JobName,
		Credentials: func() (credentials, error) {
			return ensureCredentials(ctx, l.client, l.reader, l.opts.OperatorNamespace, run.Policy, run.Owner)
		},
		Build: func(creds credentials) *batchv1.Job {
			return buildMoverJob(moverJobParams{
				Name: run.JobName, Namespace: run.Owner.GetNamespace(), Owner: run.Owner, Image: l.opts.MoverImage,
				Workspace: run.Workspace.Name, Args: run.Args(creds),
				ClaimName: run.Storage.location.ClaimName, ReadOnly: run.ReadOnly,
				CredentialsSecret: creds.SecretName, WithCA: creds.WithCA,
				Job: run.Policy.Spec.Job, PodSecurityContext: psc, NodeName: node, HostNetwork: l.opts.MoverHostNetwork,
			})
		},
	})
	return job, l.retryOrGiveUp(run.Owner.GetUID(), err, "creating the mover Job")
}

// retryOrGiveUp passes err on: nil and terminal errors as they are, a transient error for a retry
// with backoff until it has lasted launchRetryWindow, then as a terminal error.
func (l *moverLifecycle) retryOrGiveUp(uid types.UID, err error, what string) error {
	if _, terminal := asTerminal(err); err == nil || terminal {
		l.retries.forget(uid)
		return err
	}
	if l.retries.giveUp(uid, l.opts.Clock.Now()) {
		l.retries.forget(uid)
		return givenUp(err, what)
	}
	return err
}

// supervise follows owner's running Job (superviseJob).
func (l *moverLifecycle) supervise(ctx context.Context, owner client.Object, workspaceName string, ws *workspace,
	jobName string) (jobProgress, error) {
	return superviseJob(ctx, l.client, l.reader, owner, workspaceName, ws, jobName)
}

// cleanUp removes what a finished backup or restore no longer needs: its Secret copies, its Job
// while it still runs (every terminal path stops the mover), and its Job after a success (a
// failed Job stays for kubectl logs until the owner goes, which garbage-collects it).
func (l *moverLifecycle) cleanUp(ctx context.Context, owner client.Object, jobName string, succeeded bool) error {
	if err := deleteCredentialsCopies(ctx, l.client, owner); err != nil {
		return err
	}
	stop := stopMoverJob
	if succeeded {
		stop = deleteOwnedJob
	}
	return stop(ctx, l.client, l.reader, owner, jobName)
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

// stopMoverJob deletes owner's Job while it runs; a finished Job stays for kubectl logs. Every
// terminal path of a backup or restore calls it, so no mover keeps holding a volume unsupervised.
func stopMoverJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, name string) error {
	return deleteMoverJob(ctx, c, reader, owner, name, true)
}

// deleteOwnedJob deletes owner's Job whatever its state (after a success it is no longer needed).
func deleteOwnedJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, name string) error {
	return deleteMoverJob(ctx, c, reader, owner, name, false)
}

// deleteMoverJob deletes owner's Job, only when it is the owner's and with a UID precondition;
// onlyRunning leaves a finished Job alone.
func deleteMoverJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, name string, onlyRunning bool) error {
	if name == "" {
		return nil
	}
	job, err := getJob(ctx, c, reader, owner.GetNamespace(), name)
	if err != nil || job == nil || !ownedBy(job, owner) || !job.DeletionTimestamp.IsZero() {
		return err
	}
	if state, _ := jobStateOf(job); onlyRunning && state != jobActive {
		return nil
	}
	return deleteJob(ctx, c, job)
}

// getJob reads a mover Job from the cache, and from the API server when the cache has not seen
// it yet (it was created a moment ago). nil means it does not exist.
func getJob(ctx context.Context, c client.Client, reader client.Reader, namespace, name string) (*batchv1.Job, error) {
	job := &batchv1.Job{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := getConfirmed(ctx, c, reader, key, job)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Job %s: %w", key, err)
	}
	return job, nil
}

// deleteJob deletes a mover Job and its pods (background propagation: the call returns at once,
// the pod gets SIGTERM right away). The UID precondition makes sure the Job deleted is the one
// that was checked, never one created under the same name since.
func deleteJob(ctx context.Context, c client.Client, job *batchv1.Job) error {
	err := c.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &job.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	return nil
}

// jobPods lists the cached pods of a mover Job.
func jobPods(ctx context.Context, c client.Client, job *batchv1.Job) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	err := c.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{labelOwnerUID: job.Labels[labelOwnerUID]})
	if err != nil {
		return nil, fmt.Errorf("list pods of Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	var owned []corev1.Pod
	for _, p := range pods.Items {
		if metav1.IsControlledBy(&p, job) {
			owned = append(owned, p)
		}
	}
	return owned, nil
}

// jobPodCreationFailure looks, only while the Job has no pod, for the Job controller's
// FailedCreate Event (quota, admission). Events are read from the API server by field selector.
func jobPodCreationFailure(ctx context.Context, reader client.Reader, job *batchv1.Job) (string, bool, error) {
	if !noPodsYet(job) {
		return "", false, nil
	}
	events := &corev1.EventList{}
	err := reader.List(ctx, events, client.InNamespace(job.Namespace), client.MatchingFieldsSelector{
		Selector: fields.SelectorFromSet(fields.Set{"involvedObject.kind": "Job", "involvedObject.name": job.Name}),
	})
	if err != nil {
		return "", false, fmt.Errorf("list Events of Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	var mine []corev1.Event
	for _, e := range events.Items {
		if e.InvolvedObject.UID == job.UID {
			mine = append(mine, e)
		}
	}
	msg, failed := podCreationFailure(mine)
	return msg, failed, nil
}

// podOwner maps a mover Pod to its owner through the annotation its Job template sets.
func podOwner(annotation string) handler.MapFunc {
	return func(_ context.Context, obj client.Object) []ctrl.Request {
		name, ok := obj.GetAnnotations()[annotation]
		if !ok {
			return nil
		}
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
	}
}

// noPodsYet reports whether the Job controller has not started any pod of the Job.
func noPodsYet(job *batchv1.Job) bool {
	return job.Status.Active == 0 && job.Status.Succeeded == 0 && job.Status.Failed == 0
}

// jobProgress is what a mover Job shows: still running, ended with the mover's result, ended
// without one, or a failure the Job itself tells (gone, pod not creatable, failed without result).
type jobProgress struct {
	stopped   string // why the Job was stopped for the developer (superviseJob); "" while it may run
	running   bool
	requeue   time.Duration // while running: when to look again (no event announces a pod that never comes)
	failure   *terminalError
	result    mover.Result
	hasResult bool
	succeeded bool // the Job succeeded; without a result the caller decides what that means
	jobName   string
}

// followJob reads a mover Job for the backup and restore reconcilers alike. A Job whose pod cannot
// be created (a FailedCreate Warning: quota, admission) is deleted and reported at once.
func followJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, name string) (jobProgress, error) {
	namespace := owner.GetNamespace()
	job, err := getJob(ctx, c, reader, namespace, name)
	if err != nil {
		return jobProgress{}, err
	}
	if job == nil {
		return jobProgress{failure: &terminalError{reason: backupv1alpha1.ReasonJobFailed,
			message: fmt.Sprintf("mover Job %s was deleted before it finished", name)}}, nil
	}
	if !ownedBy(job, owner) {
		return jobProgress{failure: &terminalError{reason: backupv1alpha1.ReasonJobConflict,
			message: fmt.Sprintf("mover Job %s was replaced by a Job this %s did not create; its result is not trusted", name, kindOf(owner))}}, nil
	}
	state, jobReason := jobStateOf(job)
	if state == jobActive {
		msg, failed, err := jobPodCreationFailure(ctx, reader, job)
		if err != nil || !failed {
			p := jobProgress{running: true}
			if noPodsYet(job) {
				p.requeue = pollNoPods
			}
			return p, err
		}
		if err := deleteJob(ctx, c, job); err != nil {
			return jobProgress{}, err
		}
		return jobProgress{failure: &terminalError{reason: backupv1alpha1.ReasonPodCreationFailed,
			message: fmt.Sprintf("the mover pod of Job %s could not be created: %s", name, msg)}}, nil
	}
	pods, err := jobPods(ctx, c, job)
	if err != nil {
		return jobProgress{}, err
	}
	p := jobProgress{succeeded: state == jobSucceeded, jobName: name}
	p.result, p.hasResult = moverResultFrom(pods)
	if !p.hasResult && !p.succeeded {
		reason := backupv1alpha1.ReasonJobFailed
		if jobReason == batchv1.JobReasonDeadlineExceeded {
			reason = backupv1alpha1.ReasonDeadlineExceeded
		}
		p.failure = &terminalError{reason: reason, message: fmt.Sprintf(
			"mover Job %s failed (%s) without a result; see kubectl -n %s logs job/%s", name, jobReason, namespace, name)}
	}
	return p, nil
}

// superviseJob is how the backup and restore reconcilers follow their mover Job: it deletes the
// Job at once when the developer needs the workspace (see workspaceStartedReason) and says why in
// stopped; otherwise it follows the Job.
func superviseJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, workspaceName string,
	ws *workspace, jobName string) (jobProgress, error) {
	why, err := workspaceStartedReason(ctx, c, workspaceName, ws)
	switch {
	case err != nil:
		return jobProgress{}, err
	case why != "":
		return jobProgress{stopped: why}, stopMoverJob(ctx, c, reader, owner, jobName)
	}
	return followJob(ctx, c, reader, owner, jobName)
}

// failedResult is the outcome of a failed Job that left a result: the mover's reason, unless the
// result claims a success the Job contradicts.
func failedResult(p jobProgress) *terminalError {
	switch {
	case p.result.Phase != mover.PhaseFailed || p.result.Reason == "":
		return &terminalError{reason: backupv1alpha1.ReasonJobFailed, message: fmt.Sprintf(
			"mover Job %s failed; its pod reported %q (%s)", p.jobName, p.result.Phase, p.result.Message)}
	case !conditionReason.MatchString(p.result.Reason) || len(p.result.Reason) > maxReasonLength:
		// The API server would refuse the status patch, and the backup would stay Running forever.
		return &terminalError{reason: backupv1alpha1.ReasonJobFailed, message: fmt.Sprintf(
			"mover Job %s failed with the malformed reason %.64q: %s", p.jobName, p.result.Reason, p.result.Message)}
	}
	return &terminalError{reason: p.result.Reason, message: p.result.Message}
}

// conditionReason is the API server's grammar for a condition reason; maxReasonLength is
// well within its 1024-byte bound (the mover's reasons are single CamelCase words).
var conditionReason = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

const maxReasonLength = 128

// jobState is what a mover Job's conditions say.
type jobState int

const (
	jobActive jobState = iota
	jobSucceeded
	jobFailed
)

// jobStateOf reads the Job's terminal conditions; anything else is still active.
func jobStateOf(job *batchv1.Job) (jobState, string) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return jobSucceeded, ""
		case batchv1.JobFailed:
			return jobFailed, c.Reason
		default:
		}
	}
	return jobActive, ""
}

// moverResultFrom finds the mover's JSON result in the termination messages of the Job's pods,
// newest pod first. ok is false when no pod left a readable result (the message may be missing,
// or cut at 4 KiB by the kubelet).
func moverResultFrom(pods []corev1.Pod) (result mover.Result, ok bool) {
	var newest *corev1.ContainerStateTerminated
	for i := range pods {
		for _, cs := range pods[i].Status.ContainerStatuses {
			t := cs.State.Terminated
			if cs.Name != moverContainerName || t == nil || strings.TrimSpace(t.Message) == "" {
				continue
			}
			if newest == nil || t.FinishedAt.After(newest.FinishedAt.Time) {
				newest = t
			}
		}
	}
	if newest == nil {
		return mover.Result{}, false
	}
	result, err := mover.DecodeResult([]byte(newest.Message))
	return result, err == nil
}

// podCreationFailure returns the message of a FailedCreate Event the Job controller records when
// it cannot create the mover pod (quota, admission), so the backup fails now, not at the deadline.
func podCreationFailure(events []corev1.Event) (string, bool) {
	for _, e := range events {
		if e.Reason == "FailedCreate" && e.Type == corev1.EventTypeWarning {
			return e.Message, true
		}
	}
	return "", false
}
