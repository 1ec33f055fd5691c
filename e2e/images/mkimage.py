#!/usr/bin/env python3
"""Write a docker-archive image tarball (what `docker save` writes and
`ctr images import` reads) from uncompressed layer tarballs.

usage: mkimage.py --out IMG.tar --tag NAME:TAG --layer L1.tar [--layer L2.tar]
                  [--entrypoint JSON] [--cmd JSON] [--env K=V]... [--user U]
                  [--workdir DIR] [--port 5432/tcp]... [--label K=V]...
No registry, no daemon: layers are stored as-is (uncompressed)."""
import argparse
import hashlib
import json
import os
import tarfile
import tempfile


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", required=True, action="append")
    ap.add_argument("--layer", required=True, action="append")
    ap.add_argument("--entrypoint", type=json.loads)
    ap.add_argument("--cmd", type=json.loads)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--user")
    ap.add_argument("--workdir")
    ap.add_argument("--port", action="append", default=[])
    ap.add_argument("--label", action="append", default=[])
    a = ap.parse_args()

    diff_ids = [sha256_file(layer) for layer in a.layer]
    cfg = {
        "Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    }
    if a.entrypoint is not None:
        cfg["Entrypoint"] = a.entrypoint
    if a.cmd is not None:
        cfg["Cmd"] = a.cmd
    if a.user:
        cfg["User"] = a.user
    if a.workdir:
        cfg["WorkingDir"] = a.workdir
    if a.port:
        cfg["ExposedPorts"] = {p: {} for p in a.port}
    if a.label:
        cfg["Labels"] = dict(kv.split("=", 1) for kv in a.label)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "mcp-e2e mkimage.py"}
                    for _ in diff_ids],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{
        "Config": config_digest + ".json",
        "RepoTags": a.tag,
        "Layers": [d + "/layer.tar" for d in diff_ids],
    }]

    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def add_bytes(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                tar.addfile(ti, f)
        add_bytes(config_digest + ".json", config_bytes)
        for d, layer in zip(diff_ids, a.layer):
            ti = tar.gettarinfo(layer, arcname=d + "/layer.tar")
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = 0
            with open(layer, "rb") as f:
                tar.addfile(ti, f)
        add_bytes("manifest.json", json.dumps(manifest).encode())
    os.replace(tmp, a.out)
    print(config_digest)


if __name__ == "__main__":
    main()
