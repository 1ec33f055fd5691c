package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func healthLua(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(defaultLua())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func load(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, string(b))
}

func parse(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestFixtures(t *testing.T) {
	script := healthLua(t)
	for _, tc := range []struct {
		fixture string
		k, a    Verdict
	}{
		{"ready", Verdict{"Current", "Resource is Ready"}, Verdict{"Healthy", "3/3 replicas ready"}},
		{"rolling-out",
			Verdict{"InProgress", "rolling out generation 3: 1/3 replicas updated"},
			Verdict{"Progressing", "RollingOut: rolling out generation 3: 1/3 replicas updated"}},
		{"dependency-down",
			Verdict{"InProgress", "waiting for the database postgres.db.svc:5432: connection refused"},
			Verdict{"Progressing", "DependencyUnavailable: waiting for the database postgres.db.svc:5432: connection refused"}},
		{"missing-secret",
			Verdict{"Failed", "Secret team-a/notes-db not found (spec.database.urlSecretRef)"},
			Verdict{"Degraded", "InvalidSpec: Secret team-a/notes-db not found (spec.database.urlSecretRef)"}},
		{"rolled-back", // Ready=True too: Stalled wins in both
			Verdict{"Failed", "generation 4 crash-looped (CrashLoopBackOff on 2 pods); rolled back to the generation 3 template"},
			Verdict{"Degraded", "RolledBack: generation 4 crash-looped (CrashLoopBackOff on 2 pods); rolled back to the generation 3 template"}},
		{"generation-ahead",
			Verdict{"InProgress", "McpServer generation is 5, but latest observed generation is 4"},
			Verdict{"Progressing", "waiting for the operator to observe generation 5"}},
		// kstatus: no status, no conditions, not a built-in kind -> Compute falls through to Current.
		{"no-status",
			Verdict{"Current", "Resource is current"},
			Verdict{"Progressing", "waiting for the operator to observe the McpServer"}},
		// Argo CD (gitops-engine) answers before running the Lua.
		{"deleting",
			Verdict{"Terminating", "Resource scheduled for deletion"},
			Verdict{"Progressing", "Pending deletion"}},
		// Ready=False alone: kstatus' checkReadyCondition -> InProgress.
		{"ready-false-only",
			Verdict{"InProgress", "2/3 replicas ready"},
			Verdict{"Progressing", "2/3 replicas ready"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			r, err := Evaluate(load(t, tc.fixture), script, false)
			if err != nil {
				t.Fatal(err)
			}
			if r.KStatus != tc.k {
				t.Errorf("kstatus = %+v, want %+v", r.KStatus, tc.k)
			}
			if r.ArgoCD != tc.a {
				t.Errorf("argocd = %+v, want %+v", r.ArgoCD, tc.a)
			}
			// Same answer where the standard libraries are open (useOpenLibs).
			if a, err := ArgoHealth(load(t, tc.fixture), script, true); err != nil || a != tc.a {
				t.Errorf("argocd with open libs = %+v, %v", a, err)
			}
			if r.Name != "notes" || r.Namespace != "team-a" || r.Generation == 0 {
				t.Errorf("identity = %s/%s gen %d", r.Namespace, r.Name, r.Generation)
			}
		})
	}
}

// The deleting fixture's own conditions say Ready: the Lua alone would say
// Healthy, and does again once Argo CD's hook finalizer keeps the object.
func TestDeletingLuaAlone(t *testing.T) {
	u := load(t, "deleting")
	want := Verdict{"Healthy", "3/3 replicas ready"}
	if v, err := RunHealthLua(u, healthLua(t), false); err != nil || v != want {
		t.Errorf("lua = %+v, %v; want %+v", v, err, want)
	}
	u.SetFinalizers([]string{"argocd.argoproj.io/hook-finalizer"})
	if v, err := ArgoHealth(u, healthLua(t), false); err != nil || v != want {
		t.Errorf("with hook finalizer = %+v, %v; want %+v", v, err, want)
	}
}

// Objects Argo CD may see in any state: the script must not fail on nils.
func TestOddObjects(t *testing.T) {
	script := healthLua(t)
	head := `{"apiVersion":"mcp.operator.dev/v1alpha1","kind":"McpServer","metadata":{"name":"x","namespace":"n","generation":2}`
	for _, tc := range []struct {
		name, tail, kstatus string
		a                   Verdict
	}{
		{"status null", `,"status":null}`, "Current",
			Verdict{"Progressing", "waiting for the operator to observe the McpServer"}},
		{"empty status", `,"status":{}}`, "Current",
			Verdict{"Progressing", "waiting for the operator to observe the McpServer"}},
		// NestedInt64 errors on a null: Compute fails, the poller reports Unknown.
		{"observedGeneration null", `,"status":{"observedGeneration":null}}`, "Unknown",
			Verdict{"Progressing", "waiting for the operator to observe the McpServer"}},
		{"conditions not a list", `,"status":{"observedGeneration":2,"conditions":"x"}}`, "Unknown",
			Verdict{"Progressing", "waiting for the McpServer to become ready"}},
		{"no conditions", `,"status":{"observedGeneration":2}}`, "Current",
			Verdict{"Progressing", "waiting for the McpServer to become ready"}},
		{"bare conditions", `,"status":{"observedGeneration":2,"conditions":[null,{},{"type":"Stalled","status":"True"},{"type":"Ready"}]}}`, "Failed",
			Verdict{"Degraded", ""}},
		{"reconciling without message", `,"status":{"observedGeneration":2,"conditions":[{"type":"Reconciling","status":"True","reason":"Remediating"}]}}`, "InProgress",
			Verdict{"Progressing", "Remediating"}},
		{"ready unknown", `,"status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"Unknown","reason":"PodsNotStarted"}]}}`, "InProgress",
			Verdict{"Progressing", "waiting for the McpServer to become ready"}},
		// observedGeneration ahead of generation: kstatus wants equality, the Lua only "not behind".
		{"observed ahead", `,"status":{"observedGeneration":3,"conditions":[{"type":"Ready","status":"True","message":"ok"}]}}`, "InProgress",
			Verdict{"Healthy", "ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Evaluate(parse(t, head+tc.tail), script, false)
			if err != nil {
				t.Fatal(err)
			}
			if r.KStatus.Status != tc.kstatus {
				t.Errorf("kstatus = %+v, want %s", r.KStatus, tc.kstatus)
			}
			if r.ArgoCD != tc.a {
				t.Errorf("argocd = %+v, want %+v", r.ArgoCD, tc.a)
			}
		})
	}
	if v, err := RunHealthLua(parse(t, `{"kind":"McpServer"}`), script, false); err != nil || v.Status != "Progressing" {
		t.Errorf("no metadata: %+v, %v", v, err)
	}
}

// What Argo CD gives a script from argocd-cm, and how it reads the result.
func TestLuaVM(t *testing.T) {
	u := load(t, "ready")
	for _, tc := range []struct {
		name, script string
		open         bool
		want         Verdict
		err          string
	}{
		{"no string lib by default", `return {status = string.format("%s", "Healthy")}`, false, Verdict{}, "non-table object(nil) with key 'format'"},
		{"useOpenLibs", `return {status = string.format("%s", "Healthy")}`, true, Verdict{Status: "Healthy"}, ""},
		{"no global os", `return {status = "Healthy", message = tostring(os.time())}`, false, Verdict{}, "non-table object(nil) with key 'time'"},
		{"require os", `local os = require("os"); if os.time() > 0 then return {status = "Healthy"} end`, false, Verdict{Status: "Healthy"}, ""},
		{"numbers", `return {status = "Healthy", message = "g" .. obj.metadata.generation .. " r" .. obj.spec.replicas.min}`, false, Verdict{"Healthy", "g2 r3"}, ""},
		{"arrays", `return {status = "Healthy", message = obj.status.conditions[1].type .. #obj.status.conditions}`, false, Verdict{"Healthy", "Ready8"}, ""},
		{"invalid status", `return {status = "Fine"}`, false, Verdict{"Unknown", "Lua returned an invalid health status"}, ""},
		{"empty table", `return {}`, false, Verdict{}, ""},
		{"nil", `return nil`, false, Verdict{}, ""},
		{"not a table", `return "Healthy"`, false, Verdict{}, "expect table output"},
		{"runtime error", `error("boom")`, false, Verdict{}, "boom"},
		{"syntax error", `return {`, false, Verdict{}, "health.lua"},
		{"endless loop", `while true do end`, false, Verdict{}, "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := RunHealthLua(u, tc.script, tc.open)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to mention %q (got %+v)", err, tc.err, v)
				}
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("= %+v, %v; want %+v", v, err, tc.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	var items []json.RawMessage
	for _, f := range []string{"ready", "rolling-out", "rolled-back"} {
		b, err := os.ReadFile(filepath.Join("testdata", f+".json"))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, b)
	}
	list, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{"resourceVersion": ""}, "items": items})
	badLua := filepath.Join(t.TempDir(), "bad.lua")
	if err := os.WriteFile(badLua, []byte(`error("boom")`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
		rc, lines   int
		stderr      string
	}{
		{"list", string(list), nil, 0, 3, ""},
		{"file", "", []string{"testdata/ready.json"}, 0, 1, ""},
		{"stream", string(items[0]) + "\n" + string(items[1]), []string{"-"}, 0, 2, ""},
		{"expect ok", "", []string{"-expect-kstatus", "Current", "-expect-argocd", "Healthy", "testdata/ready.json"}, 0, 1, ""},
		{"expect kstatus", string(list), []string{"-expect-kstatus", "Current"}, 1, 3, "team-a/notes: kstatus is InProgress"},
		{"expect argocd", "", []string{"-expect-argocd", "Healthy", "testdata/rolled-back.json"}, 1, 1, "argocd health is Degraded (RolledBack:"},
		{"bad expectation", "", []string{"-expect-argocd", "Ready", "testdata/ready.json"}, 2, 0, "not one of"},
		{"bad json", `{"kind":`, nil, 2, 0, "unexpected EOF"},
		{"no kind", `{"metadata":{}}`, nil, 2, 0, "Kind"},
		{"empty", "", nil, 2, 0, "no Kubernetes objects"},
		{"missing file", "", []string{"testdata/nope.json"}, 2, 0, "no such file"},
		{"lua error", "", []string{"-lua", badLua, "testdata/ready.json"}, 2, 0, "boom"},
		{"bad flag", "", []string{"-nope"}, 2, 0, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			rc := run(tc.args, strings.NewReader(tc.stdin), &out, &errb)
			if rc != tc.rc {
				t.Errorf("rc = %d, want %d; stderr: %s", rc, tc.rc, errb.String())
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr %q does not mention %q", errb.String(), tc.stderr)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if out.Len() == 0 {
				lines = nil
			}
			if len(lines) != tc.lines {
				t.Fatalf("%d output lines, want %d: %s", len(lines), tc.lines, out.String())
			}
			for _, l := range lines {
				var r Result
				if err := json.Unmarshal([]byte(l), &r); err != nil || r.KStatus.Status == "" || r.ArgoCD.Status == "" {
					t.Errorf("bad line %q: %v", l, err)
				}
			}
		})
	}
}
