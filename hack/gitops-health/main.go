// Command gitops-health tells how GitOps tools judge McpServer objects: kstatus
// (Flux, kpt and other users of sigs.k8s.io/cli-utils) and Argo CD (the
// Lua health check in charts/mcp-operator/argocd/health.lua).
//
// Usage:
//
//	kubectl get mcpservers -A -o json | gitops-health [-lua FILE] [-expect-kstatus S] [-expect-argocd S] [FILE|-]
//
// Prints one JSON line per object. Exit 0: every object evaluated (and matched
// the expectations); 1: an expectation failed; 2: bad input or a Lua error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Verdict is one tool's status and message.
type Verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Result is the JSON line printed for each object.
type Result struct {
	Name               string  `json:"name"`
	Namespace          string  `json:"namespace"`
	Generation         int64   `json:"generation"`
	ObservedGeneration int64   `json:"observedGeneration"` // 0 when absent
	KStatus            Verdict `json:"kstatus"`
	ArgoCD             Verdict `json:"argocd"`
}

var (
	kstatusCodes = []string{"Current", "InProgress", "Failed", "Terminating", "NotFound", "Unknown"}
	// gitops-engine pkg/health HealthStatusCode values accepted by isValidHealthStatusCode.
	argoCodes = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
)

func defaultLua() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "mcp-operator", "argocd", "health.lua")
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gitops-health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	luaPath := fs.String("lua", defaultLua(), "Argo CD health.lua to run")
	openLibs := fs.Bool("open-libs", false, "open all Lua standard libraries, like argocd-cm resource.customizations.useOpenLibs.<group>_<kind>: true")
	wantK := fs.String("expect-kstatus", "", "exit 1 unless every object's kstatus is this")
	wantA := fs.String("expect-argocd", "", "exit 1 unless every object's Argo CD health is this")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "gitops-health: "+format+"\n", a...)
		return 2
	}
	if *wantK != "" && !slices.Contains(kstatusCodes, *wantK) {
		return fail("-expect-kstatus %q is not one of %v", *wantK, kstatusCodes)
	}
	if *wantA != "" && !slices.Contains(argoCodes, *wantA) {
		return fail("-expect-argocd %q is not one of %v", *wantA, argoCodes)
	}
	in, name := stdin, "stdin"
	switch {
	case fs.NArg() > 1:
		return fail("at most one input file, got %d", fs.NArg())
	case fs.NArg() == 1 && fs.Arg(0) != "-":
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	}
	script, err := os.ReadFile(*luaPath)
	if err != nil {
		return fail("reading Lua health script: %v", err)
	}
	objs, err := decodeObjects(in)
	if err != nil {
		return fail("%s: %v", name, err)
	}
	rc := 0
	enc := json.NewEncoder(stdout)
	for _, u := range objs {
		r, err := Evaluate(u, string(script), *openLibs)
		if err != nil {
			return fail("%s/%s: %v", u.GetNamespace(), u.GetName(), err)
		}
		if err := enc.Encode(r); err != nil {
			return fail("%v", err)
		}
		if *wantK != "" && r.KStatus.Status != *wantK {
			fmt.Fprintf(stderr, "gitops-health: %s/%s: kstatus is %s (%s), want %s\n", r.Namespace, r.Name, r.KStatus.Status, r.KStatus.Message, *wantK)
			rc = 1
		}
		if *wantA != "" && r.ArgoCD.Status != *wantA {
			fmt.Fprintf(stderr, "gitops-health: %s/%s: argocd health is %s (%s), want %s\n", r.Namespace, r.Name, r.ArgoCD.Status, r.ArgoCD.Message, *wantA)
			rc = 1
		}
	}
	return rc
}

// decodeObjects reads a stream of JSON objects; a List's items are expanded.
// Numbers decode as Kubernetes' do (int64 when integral), as in Argo CD's live state.
func decodeObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := json.NewDecoder(r)
	var objs []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("null")) {
			return nil, errors.New("input is null, not an object")
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, err
			}
			for i := range l.Items {
				objs = append(objs, &l.Items[i])
			}
			continue
		}
		objs = append(objs, u)
	}
	if len(objs) == 0 {
		return nil, errors.New("no Kubernetes objects in input")
	}
	return objs, nil
}

// Evaluate computes both verdicts for one object. Only a Lua failure is an error.
func Evaluate(u *unstructured.Unstructured, script string, openLibs bool) (Result, error) {
	og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	r := Result{Name: u.GetName(), Namespace: u.GetNamespace(), Generation: u.GetGeneration(), ObservedGeneration: og}
	if res, err := status.Compute(u); err != nil {
		// What cli-utils' poller reports for a Compute error (statusreaders.errResourceToResourceStatus).
		r.KStatus = Verdict{Status: string(status.UnknownStatus), Message: err.Error()}
	} else {
		r.KStatus = Verdict{Status: string(res.Status), Message: res.Message}
	}
	a, err := ArgoHealth(u, script, openLibs)
	if err != nil {
		return r, err
	}
	r.ArgoCD = a
	return r, nil
}

// ArgoHealth mirrors gitops-engine's pkg/health.GetResourceHealth with a health override:
// an object being deleted (without Argo CD's hook finalizer) is Progressing before any Lua runs.
func ArgoHealth(u *unstructured.Unstructured, script string, openLibs bool) (Verdict, error) {
	if u.GetDeletionTimestamp() != nil && !slices.Contains(u.GetFinalizers(), "argocd.argoproj.io/hook-finalizer") {
		return Verdict{Status: "Progressing", Message: "Pending deletion"}, nil
	}
	return RunHealthLua(u, script, openLibs)
}

// RunHealthLua runs a health.lua as Argo CD v3.5.1 does (util/lua/lua.go:
// VM.runLuaWithResourceActionParameters and VM.ExecuteHealthLua; same gopher-lua
// v1.1.2 and layeh.com/gopher-json). A script from argocd-cm runs with
// UseOpenLibs=false unless resource.customizations.useOpenLibs.<group>_<kind> is true.
func RunHealthLua(u *unstructured.Unstructured, script string, openLibs bool) (Verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	// Argo CD opens package, base and table, plus its own os subset (time, date).
	for _, lib := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.f), NRet: 0, Protect: true}, lua.LString(lib.n)); err != nil {
			return Verdict{}, err
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, u.Object))
	if err := l.DoString(script); err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return Verdict{}, fmt.Errorf("health.lua: %w", err)
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return Verdict{}, nil
	case lua.LTTable:
	default:
		return Verdict{}, fmt.Errorf("health.lua: expect table output from Lua script, not %s", ret.Type())
	}
	b, err := luajson.Encode(ret)
	if err != nil {
		return Verdict{}, fmt.Errorf("health.lua: %w", err)
	}
	var hs struct {
		Status  string `json:"status,omitempty"`
		Message string `json:"message,omitempty"`
	}
	if err := json.Unmarshal(b, &hs); err != nil {
		// Argo CD means "empty table (encoded as [])" but its errors.As matches any type error.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Verdict{}, nil
		}
		return Verdict{}, fmt.Errorf("health.lua: %w", err)
	}
	if !slices.Contains(argoCodes, hs.Status) {
		return Verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return Verdict(hs), nil
}

// decodeValue is Argo CD's util/lua decodeValue (maps -> tables, slices -> arrays).
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// Argo CD's util/lua/oslib_safe.go exposes time and date only. os.date here
// ignores its format argument (returns RFC 3339): enough for a health check.
var safeOsFuncs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int {
		if l.GetTop() == 0 {
			l.Push(lua.LNumber(time.Now().Unix()))
			return 1
		}
		tbl := l.CheckTable(1)
		field := func(k string, d int) int {
			if n, ok := tbl.RawGetString(k).(lua.LNumber); ok {
				return int(n)
			}
			return d
		}
		t := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
			field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
		l.Push(lua.LNumber(t.Unix()))
		return 1
	},
	"date": func(l *lua.LState) int {
		t := time.Now()
		if l.GetTop() >= 2 {
			t = time.Unix(l.CheckInt64(2), 0)
		}
		l.Push(lua.LString(t.Format(time.RFC3339)))
		return 1
	},
}

// openSafeOs is Argo CD's OpenSafeOs, which registers the functions under the
// *table* module name (lua.TabLibName), not "os": with UseOpenLibs=false there is
// no global os, only require("os") through the preloaded module.
func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOsFuncs))
	return 1
}
