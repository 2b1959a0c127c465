//go:build e2e || olm

package e2e

import (
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// labelOwnerUID ties a mover Job and its Pod to the WorkspaceBackup or WorkspaceRestore that made
// them (internal/controller/job.go).
const labelOwnerUID = "backup.dwbackup.io/owner-uid"

// recorder watches every mover Job and Pod for the whole run: Jobs are deleted after a success
// and their Pods with them, so what ran can only be checked from what was seen while it ran.
type recorder struct {
	mu   sync.Mutex
	pods map[types.UID]*corev1.Pod
	// jobs maps the owner's UID to the UIDs of the Jobs made for it.
	jobs     map[string]map[types.UID]string
	stop     chan struct{}
	stopOnce sync.Once
}

func startRecorder(c *cluster) *recorder {
	GinkgoHelper()
	r := &recorder{pods: map[types.UID]*corev1.Pod{}, jobs: map[string]map[types.UID]string{}, stop: make(chan struct{})}
	factory := informers.NewSharedInformerFactoryWithOptions(c.clientset, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = backupv1alpha1.LabelManagedBy + "=" + backupv1alpha1.ManagedByValue
		}))
	_, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    r.addPod,
		UpdateFunc: func(_, obj any) { r.addPod(obj) },
	})
	Expect(err).NotTo(HaveOccurred())
	_, err = factory.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: r.addJob,
	})
	Expect(err).NotTo(HaveOccurred())
	factory.Start(r.stop)
	for typ, ok := range factory.WaitForCacheSync(r.stop) {
		Expect(ok).To(BeTrue(), "informer for %v synced", typ)
	}
	return r
}

// Stop ends the informers; a second call does nothing (the cluster-lost spec stops the recorder of
// the cluster it purges before the suite's cleanup does).
func (r *recorder) Stop() { r.stopOnce.Do(func() { close(r.stop) }) }

func (r *recorder) addPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.pods[pod.UID]; !seen {
		r.pods[pod.UID] = pod.DeepCopy()
	}
}

func (r *recorder) addJob(obj any) {
	job, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	owner := job.Labels[labelOwnerUID]
	if r.jobs[owner] == nil {
		r.jobs[owner] = map[types.UID]string{}
	}
	r.jobs[owner][job.UID] = job.Namespace + "/" + job.Name
}

// Pods returns every mover Pod seen so far, as first seen.
func (r *recorder) Pods() []*corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(r.pods))
	for _, p := range r.pods {
		out = append(out, p)
	}
	return out
}

// JobsFor returns the names of the Jobs seen for an owner UID.
func (r *recorder) JobsFor(owner types.UID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.jobs[string(owner)]))
	for _, name := range r.jobs[string(owner)] {
		out = append(out, name)
	}
	return out
}

// PodsFor counts the Pods seen for an owner UID.
func (r *recorder) PodsFor(owner types.UID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.pods {
		if p.Labels[labelOwnerUID] == string(owner) {
			n++
		}
	}
	return n
}

// waitSeenJob waits until the recorder saw a Job for owner (the informer may lag the API server).
func (r *recorder) waitSeenJob(owner types.UID) {
	GinkgoHelper()
	Eventually(func() []string { return r.JobsFor(owner) }).WithTimeout(30 * time.Second).ShouldNot(BeEmpty())
}
