package v1alpha1_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

const testNamespace = "default"

var nameCounter int

// uniqueName keeps table entries independent of each other.
func uniqueName(prefix string) string {
	nameCounter++
	return fmt.Sprintf("%s-%d", prefix, nameCounter)
}

// valid returns a valid object of kind with one field set (or removed, for a nil value) at path.
func valid(kind string, path string, value any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": backupv1alpha1.GroupVersion.String(),
		"kind":       kind,
	}}
	switch kind {
	case "BackupPolicy":
		obj.Object["spec"] = map[string]any{
			"schedule": "0 2 * * *",
			"registry": map[string]any{"repository": "registry.example.com/backups"},
		}
	case "WorkspaceBackup":
		obj.SetNamespace(testNamespace)
		obj.Object["spec"] = map[string]any{"workspaceName": "my-ws", "policyName": "nightly"}
	case "WorkspaceRestore":
		obj.SetNamespace(testNamespace)
		obj.Object["spec"] = map[string]any{"workspaceName": "my-ws", "backupName": "my-ws-nightly-202611260200"}
	}
	obj.SetName(uniqueName(strings.ToLower(kind)))
	if path != "" {
		fields := strings.Split(path, ".")
		if value == nil {
			unstructured.RemoveNestedField(obj.Object, fields...)
		} else {
			ExpectWithOffset(1, unstructured.SetNestedField(obj.Object, value, fields...)).To(Succeed())
		}
	}
	return obj
}

func expectInvalid(obj client.Object, wantInMessage ...string) {
	err := k8sClient.Create(ctx, obj)
	ExpectWithOffset(1, err).To(HaveOccurred(), "the API server accepted an invalid %s", obj.GetObjectKind().GroupVersionKind().Kind)
	ExpectWithOffset(1, apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
	for _, s := range wantInMessage {
		ExpectWithOffset(1, err.Error()).To(ContainSubstring(s))
	}
}

var _ = Describe("CRD validation", func() {
	DescribeTable("rejects an invalid object with a message naming the field",
		func(kind, path string, value any, wantField, wantText string) {
			expectInvalid(valid(kind, path, value), wantField, wantText)
		},
		Entry("schedule with @every", "BackupPolicy", "spec.schedule", "@every 1h", "spec.schedule", "@every is not supported"),
		Entry("schedule with a TZ= prefix", "BackupPolicy", "spec.schedule", "TZ=Europe/Prague 0 2 * * *", "spec.schedule", "TZ="),
		Entry("schedule with a CRON_TZ= prefix", "BackupPolicy", "spec.schedule", "CRON_TZ=UTC 0 2 * * *", "spec.schedule", "CRON_TZ="),
		Entry("schedule with 6 fields", "BackupPolicy", "spec.schedule", "0 0 2 * * *", "spec.schedule", "5-field cron"),
		Entry("schedule with 4 fields", "BackupPolicy", "spec.schedule", "0 2 * *", "spec.schedule", "5-field cron"),
		Entry("schedule with an unknown descriptor", "BackupPolicy", "spec.schedule", "@fortnightly", "spec.schedule", "5-field cron"),
		Entry("schedule missing", "BackupPolicy", "spec.schedule", nil, "spec.schedule", "Required"),
		Entry("time zone with spaces", "BackupPolicy", "spec.timeZone", "Europe/ Prague", "spec.timeZone", "should match"),
		Entry("repository with a scheme", "BackupPolicy", "spec.registry.repository", "https://registry.example.com/backups", "spec.registry.repository", "scheme"),
		Entry("repository with a tag", "BackupPolicy", "spec.registry.repository", "registry.example.com/backups:v1", "spec.registry.repository", "host[:port][/path]"),
		Entry("repository with a digest", "BackupPolicy", "spec.registry.repository", "registry.example.com/backups@sha256:"+strings.Repeat("a", 64), "spec.registry.repository", "digest"),
		Entry("repository with upper-case path", "BackupPolicy", "spec.registry.repository", "registry.example.com/Backups", "spec.registry.repository", "host[:port][/path]"),
		Entry("repository missing", "BackupPolicy", "spec.registry.repository", nil, "spec.registry.repository", "Required"),
		Entry("keepLast 0", "BackupPolicy", "spec.retention.keepLast", int64(0), "spec.retention.keepLast", "greater than or equal to 1"),
		Entry("negative keepDaily", "BackupPolicy", "spec.retention.keepDaily", int64(-1), "spec.retention.keepDaily", "greater than or equal to 0"),
		Entry("negative failedHistoryLimit", "BackupPolicy", "spec.retention.failedHistoryLimit", int64(-2), "spec.retention.failedHistoryLimit", "greater than or equal to 0"),
		Entry("maxConcurrentBackups 0", "BackupPolicy", "spec.maxConcurrentBackups", int64(0), "spec.maxConcurrentBackups", "greater than or equal to 1"),
		Entry("negative startingDeadlineSeconds", "BackupPolicy", "spec.startingDeadlineSeconds", int64(-1), "spec.startingDeadlineSeconds", "greater than or equal to 0"),
		Entry("negative job.backoffLimit", "BackupPolicy", "spec.job.backoffLimit", int64(-1), "spec.job.backoffLimit", "greater than or equal to 0"),
		Entry("job.activeDeadlineSeconds 0", "BackupPolicy", "spec.job.activeDeadlineSeconds", int64(0), "spec.job.activeDeadlineSeconds", "greater than or equal to 1"),
		Entry("unknown artifact format", "BackupPolicy", "spec.artifact.format", "zip", "spec.artifact.format", "Unsupported value"),
		Entry("dwoCompatibleLatest without the layered format", "BackupPolicy", "spec.artifact",
			map[string]any{"dwoCompatibleLatest": true}, "spec.artifact", "dwoCompatibleLatest needs format: layered"),
		Entry("policy name over 63 characters", "BackupPolicy", "metadata.name", strings.Repeat("p", 64), "metadata.name", "at most 63 characters"),
		Entry("backup without workspaceName", "WorkspaceBackup", "spec.workspaceName", nil, "spec.workspaceName", "Required"),
		Entry("backup without policyName", "WorkspaceBackup", "spec.policyName", nil, "spec.policyName", "Required"),
		Entry("backup with an upper-case workspace", "WorkspaceBackup", "spec.workspaceName", "My-WS", "spec.workspaceName", "should match"),
		Entry("restore with neither source", "WorkspaceRestore", "spec.backupName", nil, "spec", "exactly one of spec.backupName and spec.artifactReference"),
		Entry("restore with both sources", "WorkspaceRestore", "spec.artifactReference", "registry.example.com/backups/default/my-ws:latest", "spec", "exactly one of spec.backupName and spec.artifactReference"),
		Entry("dashboard Secret that is the push credential", "BackupPolicy", "spec", map[string]any{
			"schedule": "0 2 * * *", "registry": map[string]any{"repository": "registry.example.com/backups", "authSecretName": "push"},
			"dashboard": map[string]any{"enabled": true, "authSecretName": "push"},
		}, "spec", "must not be spec.registry.authSecretName"),
		Entry("dashboard over layered backups without a DWO-compatible latest", "BackupPolicy", "spec", map[string]any{
			"schedule": "0 2 * * *", "registry": map[string]any{"repository": "registry.example.com/backups"},
			"dashboard": map[string]any{"enabled": true}, "artifact": map[string]any{"format": "layered"},
		}, "spec", "needs spec.artifact.dwoCompatibleLatest"),
		Entry("dashboard Secret with an invalid name", "BackupPolicy", "spec.dashboard", map[string]any{"enabled": true, "authSecretName": "Read_Only"},
			"spec.dashboard.authSecretName", "should match"),
		Entry("restore with a malformed artifactReference", "WorkspaceRestore", "spec", map[string]any{"workspaceName": "my-ws", "policyName": "nightly", "artifactReference": "https://registry.example.com/x:1"}, "spec.artifactReference", "host[:port]/path:tag"),
	)

	It("requires policyName with artifactReference", func() {
		expectInvalid(valid("WorkspaceRestore", "spec", map[string]any{
			"workspaceName": "my-ws", "artifactReference": "registry.example.com/backups/default/my-ws:latest",
		}), "spec", "spec.policyName is required with spec.artifactReference")
	})

	It("rejects policyName with backupName", func() {
		expectInvalid(valid("WorkspaceRestore", "spec.policyName", "nightly"), "spec", "spec.policyName is only used with spec.artifactReference")
	})

	DescribeTable("accepts valid shapes",
		func(kind, path string, value any) {
			obj := valid(kind, path, value)
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
		},
		Entry("loopback registry with a port", "BackupPolicy", "spec.registry.repository", "127.0.0.1:5000"),
		Entry("registry with a path", "BackupPolicy", "spec.registry.repository", "registry.example.com/backups"),
		Entry("registry with a nested path and separators", "BackupPolicy", "spec.registry.repository", "quay.io:443/org/dev_spaces/back-ups"),
		Entry("@daily", "BackupPolicy", "spec.schedule", "@daily"),
		Entry("layered artifacts", "BackupPolicy", "spec.artifact", map[string]any{"format": "layered"}),
		Entry("layered with a DWO-compatible latest", "BackupPolicy", "spec.artifact",
			map[string]any{"format": "layered", "dwoCompatibleLatest": true}),
		Entry("cron with lists, ranges and steps", "BackupPolicy", "spec.schedule", "*/15 8-18 * * MON-FRI"),
		Entry("a 63-character policy name", "BackupPolicy", "metadata.name", strings.Repeat("p", 63)),
		Entry("dashboard with its own read-only Secret", "BackupPolicy", "spec", map[string]any{
			"schedule": "0 2 * * *", "registry": map[string]any{"repository": "registry.example.com/backups", "authSecretName": "push"},
			"dashboard": map[string]any{"enabled": true, "authSecretName": "read-only"},
		}),
		Entry("dashboard over layered backups with a DWO-compatible latest", "BackupPolicy", "spec", map[string]any{
			"schedule": "0 2 * * *", "registry": map[string]any{"repository": "registry.example.com/backups"},
			"dashboard": map[string]any{"enabled": true}, "artifact": map[string]any{"format": "layered", "dwoCompatibleLatest": true},
		}),
		Entry("dashboard without a Secret (anonymous reads)", "BackupPolicy", "spec.dashboard", map[string]any{"enabled": true}),
		Entry("restore from a digest reference", "WorkspaceRestore", "spec", map[string]any{
			"workspaceName": "my-ws", "policyName": "nightly",
			"artifactReference": "127.0.0.1:5000/backups/default/my-ws@sha256:" + strings.Repeat("0", 64),
		}),
	)

	It("fills in defaults, including the inner defaults of an omitted retention and job", func() {
		obj := valid("BackupPolicy", "", nil)
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		p := &backupv1alpha1.BackupPolicy{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), p)).To(Succeed())
		Expect(p.Spec.TimeZone).To(Equal("UTC"))
		Expect(p.Spec.StartingDeadlineSeconds).To(HaveValue(BeEquivalentTo(3600)))
		Expect(p.Spec.MaxConcurrentBackups).To(BeEquivalentTo(5))
		Expect(p.Spec.Retention.KeepLast).To(BeEquivalentTo(7))
		Expect(p.Spec.Retention.FailedHistoryLimit).To(HaveValue(BeEquivalentTo(3)))
		Expect(p.Spec.Retention.DeleteArtifacts).To(HaveValue(BeTrue()))
		Expect(p.Spec.Job.BackoffLimit).To(HaveValue(BeEquivalentTo(2)))
		Expect(p.Spec.Job.ActiveDeadlineSeconds).To(HaveValue(BeEquivalentTo(3600)))
		Expect(p.Spec.Artifact.Format).To(Equal(backupv1alpha1.ArtifactFormatDWO))
	})

	It("defaults the CA bundle key", func() {
		obj := valid("BackupPolicy", "spec.registry.caBundle", map[string]any{"configMapName": "registry-ca"})
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		p := &backupv1alpha1.BackupPolicy{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), p)).To(Succeed())
		Expect(p.Spec.Registry.CABundle.Key).To(Equal("ca.crt"))
	})

	DescribeTable("keeps spec immutable",
		func(kind, field, newValue string) {
			obj := valid(kind, "", nil)
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			Expect(unstructured.SetNestedField(obj.Object, newValue, "spec", field)).To(Succeed())
			err := k8sClient.Update(ctx, obj)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring("is immutable"))
		},
		Entry("WorkspaceBackup workspaceName", "WorkspaceBackup", "workspaceName", "other-ws"),
		Entry("WorkspaceBackup policyName", "WorkspaceBackup", "policyName", "other-policy"),
		Entry("WorkspaceRestore backupName", "WorkspaceRestore", "backupName", "other-backup"),
		Entry("WorkspaceRestore workspaceName", "WorkspaceRestore", "workspaceName", "other-ws"),
	)

	It("lets a policy's spec change", func() {
		obj := valid("BackupPolicy", "", nil)
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		Expect(unstructured.SetNestedField(obj.Object, "@hourly", "spec", "schedule")).To(Succeed())
		Expect(k8sClient.Update(ctx, obj)).To(Succeed())
	})
})

var _ = Describe("samples", func() {
	It("applies every sample in config/samples", func() {
		dir := filepath.Join(testenv.RepoRoot(), "config", "samples")
		files, err := filepath.Glob(filepath.Join(dir, "backup_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(len(files)).To(BeNumerically(">=", 4))
		for _, f := range files {
			data, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			obj := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(data, &obj.Object)).To(Succeed(), f)
			if obj.GetKind() != "BackupPolicy" {
				obj.SetNamespace(testNamespace)
			}
			Expect(k8sClient.Create(ctx, obj)).To(Succeed(), f)
		}
	})
})

var _ = Describe("WorkspaceBackup status default", func() {
	It("reads as Pending before any controller wrote a status", func() {
		obj := valid("WorkspaceBackup", "", nil)
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		b := &backupv1alpha1.WorkspaceBackup{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), b)).To(Succeed())
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupPending))
	})
})
