package controller

import (
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// Mount points inside the mover container (docs/mover-contract.md).
const (
	storageMountPath     = "/workspace-storage"
	credentialsMountPath = "/credentials"
	tmpMountPath         = "/tmp"
	moverContainerName   = "mover"
	// credentialsConfigKey / credentialsCAKey are the Secret keys the mover reads.
	credentialsConfigKey = ".dockerconfigjson"
	credentialsCAKey     = "ca.crt"
	// labelOwnerUID ties Jobs, Pods and Secret copies to the WorkspaceBackup/Restore that made them.
	labelOwnerUID = "backup.dwbackup.io/owner-uid"
	// annotationBackup / annotationRestore name the owner of a mover Pod, so a Pod event maps back
	// to its WorkspaceBackup or WorkspaceRestore without a lookup (names can exceed label limits).
	annotationBackup  = "backup.dwbackup.io/backup"
	annotationRestore = "backup.dwbackup.io/restore"
)

// moverJobParams is everything a mover Job depends on; buildMoverJob is a pure function of it.
type moverJobParams struct {
	Name      string
	Namespace string
	Owner     metav1.Object // WorkspaceBackup or WorkspaceRestore; owner reference is set by the caller
	// Workspace is the DevWorkspace whose storage the Job mounts (a label, so the movers of one
	// workspace can be found).
	Workspace string
	Image     string
	// Args follow /mover: "backup ..." or "restore ...".
	Args []string
	// ClaimName is mounted at its root; ReadOnly for backups.
	ClaimName string
	ReadOnly  bool
	// CredentialsSecret ("" = anonymous); WithCA mounts ca.crt from it too.
	CredentialsSecret string
	WithCA            bool
	Job               backupv1alpha1.JobSpec
	// PodSecurityContext is the workspaces' context (policy override already applied).
	PodSecurityContext *corev1.PodSecurityContext
	// NodeName pins the pod to the node the volume is attached to ("" = anywhere).
	NodeName    string
	HostNetwork bool
}

// defaultMoverResources bound a mover that, by design, needs under 100 MiB whatever the tree size.
func defaultMoverResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
}

// buildMoverJob returns the mover Job: unprivileged, no service account token, read-only root
// filesystem, the claim root mounted without subPath so the mover (not kubelet) sees a missing
// directory and nothing is created or chowned in the user's volume.
func buildMoverJob(p moverJobParams) *batchv1.Job {
	labels := childLabels()
	labels[labelOwnerUID] = string(p.Owner.GetUID())
	labels[backupv1alpha1.LabelWorkspace] = childName(p.Workspace) // a label value holds at most 63 characters
	ownerKey := annotationBackup
	if _, ok := p.Owner.(*backupv1alpha1.WorkspaceRestore); ok {
		ownerKey = annotationRestore
	}
	annotations := map[string]string{ownerKey: p.Owner.GetName()}

	resources := defaultMoverResources()
	if p.Job.Resources != nil {
		resources = *p.Job.Resources
	}
	podSC := p.PodSecurityContext.DeepCopy()
	if podSC == nil {
		podSC = &corev1.PodSecurityContext{}
	}
	podSC.RunAsNonRoot = ptr.To(true)
	podSC.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}

	volumes := []corev1.Volume{
		{Name: "storage", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
			ClaimName: p.ClaimName, ReadOnly: p.ReadOnly,
		}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			SizeLimit: ptr.To(resource.MustParse("64Mi")),
		}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: "storage", MountPath: storageMountPath, ReadOnly: p.ReadOnly},
		{Name: "tmp", MountPath: tmpMountPath},
	}
	if p.CredentialsSecret != "" {
		items := []corev1.KeyToPath{{Key: credentialsConfigKey, Path: "config.json"}}
		if p.WithCA {
			items = append(items, corev1.KeyToPath{Key: credentialsCAKey, Path: credentialsCAKey})
		}
		volumes = append(volumes, corev1.Volume{Name: "credentials", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: p.CredentialsSecret, Items: items, DefaultMode: ptr.To[int32](0o444),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "credentials", MountPath: credentialsMountPath, ReadOnly: true})
	}

	var affinity *corev1.Affinity
	if p.NodeName != "" {
		// matchFields on metadata.name works whatever the node's hostname label says.
		affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{
					Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{p.NodeName},
				}},
			}}},
		}}
	}

	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: labels, Annotations: annotations},
		Spec: batchv1.JobSpec{
			BackoffLimit:          p.Job.BackoffLimit,
			ActiveDeadlineSeconds: p.Job.ActiveDeadlineSeconds,
			// A permanent refusal (TargetNotEmpty, Unauthorized, a usage error) fails the Job at
			// once; only retryable failures use backoffLimit (docs/mover-contract.md).
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
				Action: batchv1.PodFailurePolicyActionFailJob,
				OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					ContainerName: ptr.To(moverContainerName),
					Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
					Values:        []int32{mover.ExitUsage, mover.ExitPermanent},
				},
			}}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					HostNetwork:                   p.HostNetwork,
					SecurityContext:               podSC,
					NodeSelector:                  p.Job.NodeSelector,
					Tolerations:                   p.Job.Tolerations,
					Affinity:                      affinity,
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Volumes:                       volumes,
					Containers: []corev1.Container{{
						Name:    moverContainerName,
						Image:   p.Image,
						Command: append([]string{"/mover"}, p.Args...),
						Env: []corev1.EnvVar{
							{Name: "HOME", Value: tmpMountPath},
							{Name: "TMPDIR", Value: tmpMountPath},
						},
						Resources:                resources,
						VolumeMounts:             mounts,
						TerminationMessagePolicy: corev1.TerminationMessageReadFile,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
				},
			},
		},
	}
}

// backupArgs is the `mover backup` command line (docs/mover-contract.md).
func backupArgs(sourcePath, repository, tag string, created time.Time, workspaceName, namespace, workspaceID string,
	withAuth, withCA, insecure bool) []string {
	return append([]string{"backup",
		"--source", storageMountPath + "/" + sourcePath,
		"--repository", repository,
		"--tag", tag,
		"--created", created.UTC().Format(time.RFC3339),
		"--workspace", workspaceName,
		"--namespace", namespace,
		"--workspace-id", workspaceID,
	}, registryArgs(withAuth, withCA, insecure)...)
}

// formatArgs are the `mover backup` flags of the policy's artifact format: none for the dwo format
// (the mover's default); for the layered format, the previous backup whose layers may be reused
// (previousArtifact) and whether latest is written in the dwo format too.
func formatArgs(artifact backupv1alpha1.ArtifactSpec, previousDigest string) []string {
	if artifact.Format != backupv1alpha1.ArtifactFormatLayered {
		return nil
	}
	args := []string{"--format", string(backupv1alpha1.ArtifactFormatLayered)}
	if previousDigest != "" {
		args = append(args, "--previous", previousDigest)
	}
	if artifact.DWOCompatibleLatest {
		args = append(args, "--dwo-compatible-latest")
	}
	return args
}

// previousArtifact is the manifest digest of the newest Succeeded backup of workspaceID among
// backups (those of one policy) that lies in repository: a layered backup reuses its layers. The
// mover falls back to latest when there is none.
func previousArtifact(backups []*backupv1alpha1.WorkspaceBackup, repository, workspaceID string) string {
	backups = slices.Clone(backups)
	slices.SortFunc(backups, newestFirst)
	for _, b := range backups {
		a := b.Status.Artifact
		if b.Status.Phase == backupv1alpha1.BackupSucceeded && b.Status.WorkspaceID == workspaceID && a != nil && a.Digest != "" &&
			strings.HasPrefix(a.Reference, repository+":") {
			return a.Digest
		}
	}
	return ""
}

// restoreArgs is the `mover restore` command line (docs/mover-contract.md).
func restoreArgs(targetPath, reference string, overwrite, withAuth, withCA, insecure bool) []string {
	args := []string{"restore", "--target", storageMountPath + "/" + targetPath, "--reference", reference}
	if overwrite {
		args = append(args, "--overwrite")
	}
	return append(args, registryArgs(withAuth, withCA, insecure)...)
}

func registryArgs(withAuth, withCA, insecure bool) []string {
	args := make([]string, 0, 5)
	if withAuth {
		args = append(args, "--auth-dir", credentialsMountPath)
	}
	if withCA {
		args = append(args, "--ca-file", credentialsMountPath+"/"+credentialsCAKey)
	}
	if insecure {
		args = append(args, "--insecure")
	}
	return args
}
