// Package dashboardtest makes the reads Che's Dashboard makes to list a namespace's workspace
// backups, so tests can show that what the operator keeps is what the Dashboard finds. It follows
// the Dashboard's backend (eclipse-che/che-dashboard, packages/dashboard-backend/src/
// devworkspaceClient/services/backupApi.ts and registryApi.ts, with
// helpers/externalRegistry/OciRegistryClient.ts); docs/dashboard.md lists those reads.
package dashboardtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

var devWorkspaceGVK = schema.GroupVersionKind{Group: "workspace.devfile.io", Version: "v1alpha2", Kind: "DevWorkspace"}

// View is what the Dashboard shows for one namespace and one of its workspaces.
type View struct {
	// Authorization is the header built from the Secret devworkspace-backup-registry-auth ("" without it).
	Authorization string
	// CatalogStatus is the registry's answer to GET /v2/_catalog?n=1000.
	CatalogStatus int
	// Workspaces are the catalog's repositories under <org>/<path>/<namespace>/: workspaces with backups.
	Workspaces []string
	// Annotations are the DevWorkspace's (last-backup-successful, -finished-at, -error).
	Annotations map[string]string
}

// Read makes the Dashboard's reads for namespace and workspace with c (the developer's rights) and
// an HTTPS client that trusts ca. registryPath is the DevWorkspaceOperatorConfig's
// config.workspace.backupCronJob.registry.path.
func Read(ctx context.Context, c client.Reader, ca []byte, registryPath, namespace, workspace string) (View, error) {
	var view View
	host, repoPath, _ := strings.Cut(strings.TrimRight(registryPath, "/"), "/")
	org, path, _ := strings.Cut(repoPath, "/")
	secret := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: backupv1alpha1.DashboardSecretName}, secret)
	switch {
	case err == nil:
		if view.Authorization, err = authorization(secret, host); err != nil {
			return view, err
		}
	case !apierrors.IsNotFound(err):
		return view, fmt.Errorf("read Secret %s: %w", backupv1alpha1.DashboardSecretName, err)
	}
	body, status, err := Get(ctx, ca, "https://"+host+"/v2/_catalog?n=1000", view.Authorization)
	if err != nil {
		return view, err
	}
	view.CatalogStatus = status
	if status == http.StatusOK {
		var catalog struct{ Repositories []string }
		if err := json.Unmarshal(body, &catalog); err != nil {
			return view, fmt.Errorf("catalog: %w", err)
		}
		prefix := org + "/" + namespace + "/"
		if path != "" {
			prefix = org + "/" + path + "/" + namespace + "/"
		}
		for _, repo := range catalog.Repositories {
			if name, ok := strings.CutPrefix(repo, prefix); ok && name != "" && !strings.Contains(name, "/") {
				view.Workspaces = append(view.Workspaces, name)
			}
		}
	}
	dw := &unstructured.Unstructured{}
	dw.SetGroupVersionKind(devWorkspaceGVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: workspace}, dw); err != nil {
		return view, fmt.Errorf("read DevWorkspace %s/%s: %w", namespace, workspace, err)
	}
	view.Annotations = dw.GetAnnotations()
	return view, nil
}

// authorization is the header the Dashboard sends: Bearer with a quay-api-token key, else Basic
// with the .dockerconfigjson entry of exactly host.
func authorization(secret *corev1.Secret, host string) (string, error) {
	if token := secret.Data["quay-api-token"]; len(token) > 0 {
		return "Bearer " + strings.TrimSpace(string(token)), nil
	}
	cfg := secret.Data[corev1.DockerConfigJsonKey]
	if len(cfg) == 0 {
		return "", nil
	}
	var parsed struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(cfg, &parsed); err != nil {
		return "", fmt.Errorf("%s: %w", corev1.DockerConfigJsonKey, err)
	}
	if a := strings.TrimSpace(parsed.Auths[host].Auth); a != "" {
		return "Basic " + a, nil
	}
	return "", nil
}

// BasicAuth is the Authorization header for a user and password.
func BasicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// Get is one GET as the Dashboard's Node.js https.get makes it, TLS verified against ca; it asks
// for OCI manifests, so it also fetches <repository>/manifests/latest.
func Get(ctx context.Context, ca []byte, url, authorization string) ([]byte, int, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, 0, errors.New("no CA certificate in the PEM given")
	}
	hc := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}
