// Command validate-manifests checks rendered Kubernetes manifests offline,
// without a cluster or downloaded JSON schemas:
//
//   - every document is strictly decoded into its k8s.io/api Go type, so an
//     unknown, misspelt or mistyped field fails (what kubectl's server-side
//     field validation would reject);
//   - every pod template is evaluated against the `restricted` Pod Security
//     Standard (latest) with the upstream pod-security-admission checks.
//
// Kinds without Go types here (monitoring.coreos.com ServiceMonitor and
// PrometheusRule) are only checked for apiVersion/kind/metadata.name
// (hack/check-alerts.sh checks the PrometheusRule's rules).
//
// Usage: go run . FILE...   (use "-" for stdin)
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		return &rbacv1.ClusterRole{}, true
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, true
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule":
		return nil, true
	}
	return nil, false
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate-manifests FILE... (- for stdin)")
		os.Exit(2)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	restricted := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

	var failures []string
	objects := 0
	for _, path := range os.Args[1:] {
		var in io.Reader
		if path == "-" {
			in = os.Stdin
		} else {
			f, err := os.Open(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer f.Close()
			in = f
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
		for doc := 1; ; doc++ {
			raw, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: document %d: %v", path, doc, err))
				break
			}
			if len(bytes.TrimSpace(stripComments(raw))) == 0 {
				continue
			}
			var meta struct {
				metav1.TypeMeta `json:",inline"`
				Metadata        metav1.ObjectMeta `json:"metadata"`
			}
			if err := yaml.Unmarshal(raw, &meta); err != nil {
				failures = append(failures, fmt.Sprintf("%s: document %d: %v", path, doc, err))
				continue
			}
			id := fmt.Sprintf("%s %s/%s", meta.Kind, meta.Metadata.Namespace, meta.Metadata.Name)
			if meta.APIVersion == "" || meta.Kind == "" || meta.Metadata.Name == "" {
				failures = append(failures, fmt.Sprintf("%s: document %d: missing apiVersion, kind or metadata.name", path, doc))
				continue
			}
			obj, known := newObject(meta.APIVersion, meta.Kind)
			if !known {
				failures = append(failures, fmt.Sprintf("%s: %s: unexpected apiVersion/kind %s/%s", path, id, meta.APIVersion, meta.Kind))
				continue
			}
			objects++
			if obj == nil {
				continue
			}
			if err := yaml.UnmarshalStrict(raw, obj); err != nil {
				failures = append(failures, fmt.Sprintf("%s: %s: %v", path, id, err))
				continue
			}
			if d, ok := obj.(*appsv1.Deployment); ok {
				res := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec))
				if !res.Allowed {
					failures = append(failures, fmt.Sprintf("%s: %s: violates restricted Pod Security Standard: %s: %s",
						path, id, res.ForbiddenReason(), res.ForbiddenDetail()))
				} else {
					fmt.Printf("  ok   %s passes the restricted Pod Security Standard (%s)\n", id, restricted.Version.String())
				}
			}
		}
	}
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Println("  FAIL " + f)
		}
		os.Exit(1)
	}
	fmt.Printf("  ok   %d objects decode strictly into their Kubernetes types\n", objects)
}

func stripComments(b []byte) []byte {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\n"))
}
