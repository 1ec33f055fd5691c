"""Run `mcp-loadclient` (e2e/workload) against the MCP Service and collect its report."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from kube import Kube, log, now_ms

REPO = Path(__file__).resolve().parents[2]


def find_loadclient() -> str:
    if os.environ.get("MCP_LOADCLIENT"):
        return os.environ["MCP_LOADCLIENT"]
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    for p in (target / "release/mcp-loadclient", target / "debug/mcp-loadclient"):
        if p.exists():
            return str(p)
    found = shutil.which("mcp-loadclient")
    if found:
        return found
    raise SystemExit("e2e: mcp-loadclient not found: cargo build --release -p mcp-workload "
                     "(or set MCP_LOADCLIENT)")


CLUSTERIP_WAIT_S = 30


def tcp_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Endpoint:
    """How the host reaches an McpServer's Service: its ClusterIP directly (kube-proxy
    makes ClusterIPs routable from the node, as on the local cluster), or else a
    `kubectl port-forward` to the Service (pins one pod: weaker, used on kind)."""

    def __init__(self, kube: Kube, namespace: str, name: str, port: int = 8080, path: str = "/mcp"):
        self.kube, self.namespace, self.name, self.port, self.path = kube, namespace, name, port, path
        self.pf: subprocess.Popen | None = None
        self.mode = None
        self.url = None

    def open(self) -> str:
        svc = self.kube.get("service", self.name, "-n", self.namespace)
        if not svc:
            raise RuntimeError(f"Service {self.namespace}/{self.name} not found")
        ip = svc["spec"].get("clusterIP")
        if ip and ip != "None":
            # A Service just created may take kube-proxy a few seconds to program:
            # wait for it rather than fall back to a port-forward that pins one pod.
            deadline = time.monotonic() + CLUSTERIP_WAIT_S
            while True:
                if tcp_ok(ip, self.port, 1.0):
                    self.mode, self.url = "clusterip", f"http://{ip}:{self.port}{self.path}"
                    return self.url
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
        local = 18000 + (abs(hash(self.name)) % 1000)
        self.pf = subprocess.Popen(
            [self.kube.kubectl, "port-forward", "-n", self.namespace, f"svc/{self.name}",
             f"{local}:{self.port}", "--address", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if tcp_ok("127.0.0.1", local, 0.2):
                break
            time.sleep(0.2)
        log(f"ClusterIP {ip} not reachable from this host; using kubectl port-forward (pins one pod)")
        self.mode, self.url = "port-forward", f"http://127.0.0.1:{local}{self.path}"
        return self.url

    def close(self):
        if self.pf and self.pf.poll() is None:
            self.pf.terminate()
            try:
                self.pf.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.pf.kill()


class LoadClient:
    def __init__(self, binary: str, url: str, out_dir: Path, tag: str, duration_s: float,
                 rate: float = 20, concurrency: int = 4, call_timeout_s: float = 5,
                 verify_timeout_s: float = 60):
        self.binary, self.url = binary, url
        out_dir.mkdir(parents=True, exist_ok=True)
        self.report_path = out_dir / f"{tag}.client.json"
        self.mark_path = out_dir / f"{tag}.marks"
        self.log_path = out_dir / f"{tag}.client.log"
        self.mark_path.write_text("")
        self.duration_s = duration_s
        self.verify_timeout_s = verify_timeout_s
        self.args = [binary, "--url", url, "--rate", str(rate), "--concurrency", str(concurrency),
                     "--duration-s", str(duration_s), "--out", str(self.report_path),
                     "--mark-file", str(self.mark_path), "--call-timeout-s", str(call_timeout_s),
                     "--verify-timeout-s", str(verify_timeout_s), "--bucket-ms", "500",
                     "--key-prefix", f"e2e-{tag}-{now_ms()}", "--quiet"]
        self.proc: subprocess.Popen | None = None
        self.started_ms = None

    def start(self) -> "LoadClient":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self._log)
        self.started_ms = now_ms()
        return self

    def mark(self, t_ms: int) -> None:
        with open(self.mark_path, "a") as f:
            f.write(f"{t_ms}\n")

    def wait(self) -> dict:
        """Wait for the run + read-back to finish (bounded) and return the report."""
        budget = self.duration_s + self.verify_timeout_s + 60
        try:
            rc = self.proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        if not self.report_path.exists():
            tail = self.log_path.read_text()[-2000:]
            return {"client_failed": True, "exit_code": rc, "stderr_tail": tail}
        rep = json.loads(self.report_path.read_text())
        rep["exit_code"] = rc
        return rep

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
