"""kubectl/helm driven through subprocess, plus watch threads that timestamp
every change of the objects they follow (the suite's stopwatch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

K8S_BIN = Path.home() / ".cache/mcp-operator/k8s/1.34.4/bin"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] e2e: {msg}", file=sys.stderr, flush=True)


def find_tool(name: str, env: str) -> str:
    """$ENV, then PATH, then the local cluster's build cache."""
    if os.environ.get(env):
        return os.environ[env]
    found = shutil.which(name)
    if found:
        return found
    cached = K8S_BIN / name
    if cached.exists():
        return str(cached)
    raise SystemExit(f"e2e: {name} not found: set {env}, put it on PATH, or build the local cluster")


def now_ms() -> int:
    return int(time.time() * 1000)


class KubeError(RuntimeError):
    def __init__(self, args, rc, out, err):
        super().__init__(f"{' '.join(args)} -> rc={rc}: {err.strip() or out.strip()}")
        self.rc, self.stdout, self.stderr = rc, out, err


class Kube:
    def __init__(self, kubectl: str, helm: str, verbose: bool = False):
        self.kubectl = kubectl
        self.helm = helm
        self.verbose = verbose

    # -- plain commands ---------------------------------------------------
    def run(self, args, *, stdin: str | None = None, timeout: float = 60, check: bool = True,
            tool: str | None = None) -> subprocess.CompletedProcess:
        cmd = [tool or self.kubectl, *args]
        if self.verbose:
            log("$ " + " ".join(cmd))
        try:
            p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise KubeError(cmd, -1, "", f"timed out after {timeout}s") from e
        if check and p.returncode != 0:
            raise KubeError(cmd, p.returncode, p.stdout, p.stderr)
        return p

    def helm_run(self, args, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run(args, timeout=timeout, tool=self.helm)

    def get(self, *args, timeout: float = 30):
        """`kubectl get ... -o json` as a dict (None when NotFound)."""
        p = self.run(["get", *args, "-o", "json"], timeout=timeout, check=False)
        if p.returncode != 0:
            if "NotFound" in p.stderr or "not found" in p.stderr:
                return None
            raise KubeError(["get", *args], p.returncode, p.stdout, p.stderr)
        return json.loads(p.stdout)

    def items(self, *args, timeout: float = 30) -> list:
        d = self.get(*args, timeout=timeout)
        return (d or {}).get("items", [])

    def apply(self, path: str | Path | None = None, text: str | None = None, server_side=False):
        args = ["apply"]
        if server_side:
            args += ["--server-side", "--force-conflicts"]
        if text is not None:
            return self.run(args + ["-f", "-"], stdin=text)
        return self.run(args + ["-f", str(path)])

    def wait_for(self, what: str, fn, timeout: float, interval: float = 1.0):
        """Poll fn() until truthy; returns its value or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        last_exc = None
        while True:
            try:
                v = fn()
                if v:
                    return v
            except KubeError as e:  # transient API errors must not end a wait
                last_exc = e
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                                   + (f" (last error: {last_exc})" if last_exc else ""))
            time.sleep(interval)


# -- object summaries ------------------------------------------------------
def pod_summary(pod: dict) -> dict:
    st = pod.get("status", {})
    conds = {c["type"]: c.get("status") for c in st.get("conditions", []) or []}
    cs = st.get("containerStatuses", []) or []
    waiting = [c.get("state", {}).get("waiting", {}).get("reason") for c in cs
               if c.get("state", {}).get("waiting")]
    return {
        "uid": pod["metadata"].get("uid"),
        "ready": conds.get("Ready") == "True",
        "restarts": sum(int(c.get("restartCount", 0)) for c in cs),
        "phase": st.get("phase"),
        "deleting": bool(pod["metadata"].get("deletionTimestamp")),
        "waiting": [w for w in waiting if w],
        "rs": (pod["metadata"].get("labels") or {}).get("pod-template-hash"),
    }


def mcps_summary(obj: dict) -> dict:
    st = obj.get("status") or {}
    conds = {c["type"]: (c.get("status"), c.get("reason")) for c in st.get("conditions", []) or []}
    rem = st.get("remediation") or {}
    return {
        "phase": st.get("phase"),
        "readyReplicas": st.get("readyReplicas", 0),
        "conditions": conds,
        "remediationState": rem.get("state"),
        "actionsInWindow": rem.get("actionsInWindow", 0),
        "generation": obj["metadata"].get("generation"),
        "observedGeneration": st.get("observedGeneration"),
    }


class Watcher:
    """`kubectl get RES --watch --output-watch-events -o json` in a thread.

    Every event updates `state` (name -> summary) and appends a snapshot
    `(t_ms, {name: summary})` to `history`, timestamped on receipt."""

    def __init__(self, kube: Kube, resource: str, namespace: str, selector: str | None = None,
                 field_selector: str | None = None, summarize=pod_summary):
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.selector = selector
        self.field_selector = field_selector
        self.summarize = summarize
        self.state: dict[str, dict] = {}
        self.history: list[tuple[int, dict]] = []
        self.lock = threading.Lock()
        self.events = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def _cmd(self):
        cmd = [self.kube.kubectl, "get", self.resource, "-n", self.namespace, "--watch",
               "--output-watch-events", "-o", "json", "--request-timeout=0"]
        if self.selector:
            cmd += ["-l", self.selector]
        if self.field_selector:
            cmd += ["--field-selector", self.field_selector]
        return cmd

    def _loop(self):
        restarts = 0
        dec = json.JSONDecoder()
        while not self._stop.is_set() and restarts < 20:
            try:
                self._proc = subprocess.Popen(self._cmd(), stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL)
            except OSError:
                return
            buf = ""
            fd = self._proc.stdout.fileno()
            while not self._stop.is_set():
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk.decode("utf-8", "replace")
                while True:
                    s = buf.lstrip()
                    if not s:
                        buf = ""
                        break
                    try:
                        obj, end = dec.raw_decode(s)
                    except json.JSONDecodeError:
                        buf = s
                        break
                    buf = s[end:]
                    self._on_event(obj)
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except Exception:
                pass
            restarts += 1
            if not self._stop.is_set():
                time.sleep(0.2)

    def _on_event(self, ev: dict):
        t = now_ms()
        kind = ev.get("type")
        obj = ev.get("object") or {}
        name = (obj.get("metadata") or {}).get("name")
        if not name or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        with self.lock:
            if kind == "DELETED":
                self.state.pop(name, None)
            else:
                self.state[name] = self.summarize(obj)
            self.history.append((t, {k: dict(v) for k, v in self.state.items()}))
            self.events += 1

    def wait_synced(self, min_objects: int = 1, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.state) >= min_objects:
                    return True
            time.sleep(0.1)
        return False

    def snapshot(self) -> list[tuple[int, dict]]:
        with self.lock:
            return list(self.history)

    def stop(self):
        self._stop.set()
        if self._proc and self._proc.poll() is None:
            try:
                self._proc.kill()
            except Exception:
                pass
        self._thread.join(timeout=5)
