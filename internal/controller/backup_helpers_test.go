package controller

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// backupFixture is one namespace with a suspended policy that applies only to it, so specs of
// the backup reconciler never see each other's objects and the policy's schedule never fires.
type backupFixture struct {
	Namespace string
	Policy    *backupv1alpha1.BackupPolicy
}

func newBackupFixture(mutate ...func(*backupv1alpha1.BackupPolicy)) backupFixture {
	GinkgoHelper()
	label := "fixture-" + rand.String(8)
	ns := newNamespace(map[string]string{"fixture": label})
	p := &backupv1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p-" + rand.String(8)},
		Spec: backupv1alpha1.BackupPolicySpec{
			Schedule:          "0 2 * * *",
			Suspend:           true,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fixture": label}},
			Registry:          backupv1alpha1.RegistrySpec{Repository: suiteRegistry + "/backups", Insecure: true},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	return backupFixture{Namespace: ns, Policy: p}
}

// boundPVC creates a Bound PVC (envtest has no PV controller).
func boundPVC(namespace, name string) {
	GinkgoHelper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			VolumeName:  "pv-" + rand.String(6),
		},
	}
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	pvc.Status.Phase = corev1.ClaimBound
	Expect(k8sClient.Status().Update(ctx, pvc)).To(Succeed())
}

// manualBackup creates a WorkspaceBackup as a person would.
func manualBackup(namespace, workspaceName, policyName string) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	b := &backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: workspaceName + "-manual-" + rand.String(5), Namespace: namespace},
		Spec:       backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: workspaceName, PolicyName: policyName},
	}
	Expect(k8sClient.Create(ctx, b)).To(Succeed())
	return b
}

func getBackup(b *backupv1alpha1.WorkspaceBackup) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	got := &backupv1alpha1.WorkspaceBackup{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(b), got)).To(Succeed())
	return got
}

// eventuallyPhase waits for a backup phase and returns the backup.
func eventuallyPhase(b *backupv1alpha1.WorkspaceBackup, phase backupv1alpha1.BackupPhase) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	var got *backupv1alpha1.WorkspaceBackup
	Eventually(func(g Gomega) {
		got = &backupv1alpha1.WorkspaceBackup{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(b), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(phase), "message: %s", got.Status.Message)
	}).Should(Succeed())
	return got
}

// expectReason checks Ready/Stalled against the phase, the reason, and the observed generation.
func expectReason(b *backupv1alpha1.WorkspaceBackup, reason string, stalled bool) {
	GinkgoHelper()
	ready := meta.FindStatusCondition(b.Status.Conditions, backupv1alpha1.ConditionReady)
	Expect(ready).NotTo(BeNil())
	Expect(ready.Reason).To(Equal(reason))
	Expect(ready.ObservedGeneration).To(Equal(b.Generation))
	wantReady := b.Status.Phase == backupv1alpha1.BackupSucceeded || b.Status.Phase == backupv1alpha1.BackupSkipped
	wantStatus := metav1.ConditionFalse
	if wantReady {
		wantStatus = metav1.ConditionTrue
	}
	Expect(ready.Status).To(Equal(wantStatus))
	Expect(meta.IsStatusConditionTrue(b.Status.Conditions, backupv1alpha1.ConditionStalled)).To(Equal(stalled))
}

// moverJob returns the backup's Job once it exists.
func moverJob(b *backupv1alpha1.WorkspaceBackup) *batchv1.Job {
	GinkgoHelper()
	job := &batchv1.Job{}
	Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: childName("backup", b.Name)}, job)
	}).Should(Succeed())
	return job
}

// expectJobGone waits until the Job is deleted (or being deleted).
func expectJobGone(namespace, name string) {
	GinkgoHelper()
	Eventually(func() bool {
		job := &batchv1.Job{}
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, job)
		return client.IgnoreNotFound(err) == nil && (err != nil || !job.DeletionTimestamp.IsZero())
	}).Should(BeTrue(), "Job %s/%s still exists", namespace, name)
}

// finishJob plays the Job controller and the kubelet: a pod of the Job that terminated with the
// mover's result as its termination message (empty = none), then the Job's final conditions. A
// backup Job that succeeds has pushed its unique tag, as the real mover would, unless the spec did.
func finishJob(job *batchv1.Job, succeeded bool, result *mover.Result, rawMessage string) {
	GinkgoHelper()
	if repo, tag := jobArg(job, "--repository"), jobArg(job, "--tag"); succeeded && repo != "" && !resolvable(repo+":"+tag) &&
		(result == nil || result.Phase == mover.PhaseSucceeded) {
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "f"), []byte(rand.String(16)), 0o600)).To(Succeed())
		pushed := pushTree(repo, tag, dir)
		if result != nil {
			result.Digest = pushed.Digest
		}
	}
	finishJobAsIs(job, succeeded, result, rawMessage)
}

// finishJobAsIs ends a Job as finishJob does, without pushing anything to the registry.
func finishJobAsIs(job *batchv1.Job, succeeded bool, result *mover.Result, rawMessage string) {
	GinkgoHelper()
	message := rawMessage
	if result != nil {
		data, err := json.Marshal(result)
		Expect(err).NotTo(HaveOccurred())
		message = string(data)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-" + rand.String(5), Namespace: job.Namespace,
			Labels: job.Spec.Template.Labels, Annotations: job.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptr.To(true)}},
		},
		Spec: job.Spec.Template.Spec,
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	exit := int32(0)
	if !succeeded {
		exit = 1
	}
	now := metav1.NewTime(time.Now())
	pod.Status.Phase = corev1.PodSucceeded
	if !succeeded {
		pod.Status.Phase = corev1.PodFailed
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: moverContainerName, Image: job.Spec.Template.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exit, Message: message, StartedAt: now, FinishedAt: now,
		}},
	}}
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
	// Wait until the manager's cache has the pod, as it would before the Job status changes.
	Eventually(func() error { return mgrCache.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}) }).Should(Succeed())

	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
	job.Status.StartTime = &now
	if succeeded {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, LastTransitionTime: now},
		}
	}
	Expect(k8sClient.Status().Update(ctx, job)).To(Succeed())
}

// stoppedWorkspace creates a stopped per-workspace DevWorkspace with its Bound PVC.
func stoppedWorkspace(namespace, name string) testWorkspace {
	GinkgoHelper()
	w := testWorkspace{Namespace: namespace, Name: name, StorageType: storagePerWorkspace,
		StoppedAt: time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)}
	createWorkspace(w)
	w.ID = workspaceOf(namespace, name).ID
	boundPVC(namespace, "storage-"+w.ID)
	return w
}

// startWorkspace sets spec.started as a person opening the workspace does.
func startWorkspace(namespace, name string) {
	GinkgoHelper()
	dw := getWorkspace(namespace, name)
	unstructuredSetStarted(dw.Object, true)
	Expect(k8sClient.Update(ctx, dw)).To(Succeed())
}

func unstructuredSetStarted(obj map[string]any, started bool) {
	spec, _ := obj["spec"].(map[string]any)
	spec["started"] = started
}

func succeededResult(reference string) *mover.Result {
	return &mover.Result{Phase: mover.PhaseSucceeded, Reason: mover.ReasonCompleted, Reference: reference,
		Digest: "sha256:" + sha256Hex("artifact"), SizeBytes: 1234, Bytes: 5678, Files: 42}
}

type eventsv1List struct{ eventsv1.EventList }

func resourceQuantity(s string) resource.Quantity { return resource.MustParse(s) }

func randomSuffix() string { return rand.String(6) }

// jobArg is the value of a mover flag in a Job's command ("" when absent).
func jobArg(job *batchv1.Job, flag string) string {
	cmd := job.Spec.Template.Spec.Containers[0].Command
	for i := range len(cmd) - 1 {
		if cmd[i] == flag {
			return cmd[i+1]
		}
	}
	return ""
}

// testCAPEM is a self-signed CA certificate, made once per test binary.
var testCAPEM = sync.OnceValue(func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
})
