package controller

import (
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

func testJobParams() moverJobParams {
	owner := &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Name: "my-ws-nightly-202611260200", Namespace: "team-a", UID: "uid-1"}}
	return moverJobParams{
		Name: "backup-my-ws-nightly-202611260200", Namespace: "team-a", Owner: owner,
		Image:     "registry.example.com/dwbackup/operator:v1",
		Workspace: "my-ws",
		Args: backupArgs("workspace0123/projects", "registry.example.com/backups/team-a/my-ws", "nightly-20261126T020000Z",
			time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), "my-ws", "team-a", "workspace0123", true, true, false),
		ClaimName: "claim-devworkspace", ReadOnly: true,
		CredentialsSecret: "dwbackup-registry-auth", WithCA: true,
		Job: backupv1alpha1.JobSpec{
			BackoffLimit: ptr.To[int32](2), ActiveDeadlineSeconds: ptr.To[int64](3600),
			NodeSelector: map[string]string{"pool": "backup"},
			Tolerations:  []corev1.Toleration{{Key: "backup", Operator: corev1.TolerationOpExists}},
		},
		PodSecurityContext: dwoDefaultPodSecurityContext(),
		NodeName:           "node-1",
	}
}

func TestBuildMoverJob(t *testing.T) {
	job := buildMoverJob(testJobParams())
	pod := job.Spec.Template.Spec
	c := pod.Containers[0]

	checks := []struct {
		name string
		ok   bool
	}{
		{"name and namespace", job.Name == "backup-my-ws-nightly-202611260200" && job.Namespace == "team-a"},
		{"operator labels on job and pod", job.Labels[backupv1alpha1.LabelManagedBy] == backupv1alpha1.ManagedByValue &&
			job.Spec.Template.Labels[labelOwnerUID] == "uid-1"},
		{"owner annotation on the pod", job.Spec.Template.Annotations[annotationBackup] == "my-ws-nightly-202611260200"},
		{"image", c.Image == "registry.example.com/dwbackup/operator:v1"},
		{"command starts with /mover backup", slices.Equal(c.Command[:2], []string{"/mover", "backup"})},
		{"source is the mount plus path", strings.Contains(strings.Join(c.Command, " "), "--source /workspace-storage/workspace0123/projects")},
		{"auth dir and CA file", strings.Contains(strings.Join(c.Command, " "), "--auth-dir /credentials --ca-file /credentials/ca.crt")},
		{"not insecure", !slices.Contains(c.Command, "--insecure")},
		{"created time from the slot, never the mover's clock", strings.Contains(strings.Join(c.Command, " "),
			"--tag nightly-20261126T020000Z --created 2026-11-26T02:00:00Z")},
		{"workspace label, so a restore finds the movers of its workspace", job.Labels[backupv1alpha1.LabelWorkspace] == "my-ws"},
		{"claim root mounted read-only without subPath", pod.Volumes[0].PersistentVolumeClaim.ClaimName == "claim-devworkspace" &&
			pod.Volumes[0].PersistentVolumeClaim.ReadOnly && c.VolumeMounts[0].ReadOnly && c.VolumeMounts[0].SubPath == ""},
		{"emptyDir for /tmp", pod.Volumes[1].EmptyDir != nil && c.VolumeMounts[1].MountPath == "/tmp"},
		{"credentials with items", len(pod.Volumes[2].Secret.Items) == 2 && pod.Volumes[2].Secret.Items[0].Path == "config.json" &&
			pod.Volumes[2].Secret.Items[1].Key == "ca.crt"},
		{"read-only root filesystem", *c.SecurityContext.ReadOnlyRootFilesystem},
		{"no privilege escalation", !*c.SecurityContext.AllowPrivilegeEscalation},
		{"all capabilities dropped", slices.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"})},
		{"non-root", *pod.SecurityContext.RunAsNonRoot && *c.SecurityContext.RunAsNonRoot},
		{"seccomp RuntimeDefault", pod.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"workspace user from DWO", *pod.SecurityContext.RunAsUser == 1234 && *pod.SecurityContext.FSGroup == 1234},
		{"no service account token", !*pod.AutomountServiceAccountToken},
		{"restart never", pod.RestartPolicy == corev1.RestartPolicyNever},
		{"default resources", c.Resources.Limits.Memory().Equal(resource.MustParse("256Mi"))},
		{"policy knobs", *job.Spec.BackoffLimit == 2 && *job.Spec.ActiveDeadlineSeconds == 3600 &&
			pod.NodeSelector["pool"] == "backup" && pod.Tolerations[0].Key == "backup"},
		{"pinned to the attached node", pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.
			NodeSelectorTerms[0].MatchFields[0].Values[0] == "node-1"},
		{"no host network by default", !pod.HostNetwork},
		{"permanent mover failures fail the Job at once", job.Spec.PodFailurePolicy != nil &&
			job.Spec.PodFailurePolicy.Rules[0].Action == batchv1.PodFailurePolicyActionFailJob &&
			slices.Equal(job.Spec.PodFailurePolicy.Rules[0].OnExitCodes.Values, []int32{2, 3})},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("job spec: %s", ch.name)
		}
	}
}

func TestBuildMoverJobVariants(t *testing.T) {
	p := testJobParams()
	p.CredentialsSecret, p.WithCA, p.NodeName, p.HostNetwork = "", false, "", true
	p.Job.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	p.PodSecurityContext = nil
	job := buildMoverJob(p)
	pod := job.Spec.Template.Spec
	if len(pod.Volumes) != 2 {
		t.Errorf("anonymous registry access should mount no credentials, got %d volumes", len(pod.Volumes))
	}
	if pod.Affinity != nil {
		t.Errorf("no node to pin to, want no affinity")
	}
	if !pod.HostNetwork {
		t.Errorf("--mover-host-network not honoured")
	}
	if !pod.Containers[0].Resources.Limits.Memory().Equal(resource.MustParse("1Gi")) {
		t.Errorf("policy resources not used")
	}
	if pod.SecurityContext == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("an empty security context (OpenShift) must still be non-root")
	}
	restore := restoreArgs("projects", "reg/ns/ws@sha256:abc", true, false, false, true)
	if !slices.Equal(restore, []string{"restore", "--target", "/workspace-storage/projects", "--reference", "reg/ns/ws@sha256:abc", "--overwrite", "--insecure"}) {
		t.Errorf("restoreArgs = %v", restore)
	}
}

// TestMoverPodIsRestricted runs the pod spec through the Pod Security Admission evaluator.
func TestMoverPodIsRestricted(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, hostNetwork := range []bool{false, true} {
		p := testJobParams()
		p.HostNetwork = hostNetwork
		job := buildMoverJob(p)
		results := evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()},
			&job.Spec.Template.ObjectMeta, &job.Spec.Template.Spec)
		for _, r := range results {
			if r.Allowed {
				continue
			}
			// The loopback-only test cluster needs host networking; nothing else may fail.
			if hostNetwork && r.ForbiddenReason == "host namespaces" {
				continue
			}
			t.Errorf("hostNetwork=%v: restricted check failed: %s: %s", hostNetwork, r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}
