#!/usr/bin/env python3
"""Writes an OCI image layout of a small multi-layer busybox image, for the registry
tests and bench/pull.sh (pushed to a loopback registry with skopeo).

    mkimage.py OUT [--busybox /bin/busybox] [--filler-mib N] [--filler-layers K]

OUT/ gets `oci-layout`, `index.json` and `blobs/sha256/*`, with three references:
  single  - linux/amd64 image manifest (3 layers + an optional filler layer)
  multi   - an image index: linux/amd64 (that image) and linux/arm64 (a variant whose
            /etc/platform says arm64; its busybox is the host's binary)
Layers (plain tar; skopeo compresses them when it pushes):
  1. busybox with its applet links, /etc/passwd, /etc/gone, /opt/old/{a,b}
  2. /etc/motd, a whiteout of /etc/gone, an opaque /opt/old holding only c
  3. /etc/platform
  4. (--filler-mib N) K layers (default 1) of N MiB of random bytes each
     (/filler<k>/*), for timing pulls
The config carries Env, Entrypoint, Cmd, WorkingDir, ExposedPorts, User, Labels,
Healthcheck and a history entry per layer.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

EPOCH = 1700000000


def tar_bytes(entries):
    """entries: list of (name, kind, data_or_target, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = EPOCH
            ti.mode = mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class Layout:
    def __init__(self, out):
        self.out = out
        os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(out, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def blob(self, data, media_type):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.out, "blobs", "sha256", d), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + d, "size": len(data)}


def image(lay, layers, arch, extra_label):
    descs, diff_ids, history = [], [], []
    for comment, data in layers:
        descs.append(lay.blob(data, "application/vnd.oci.image.layer.v1.tar"))
        diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
        history.append({"created": "2023-11-14T22:13:20Z", "created_by": comment})
    history.append({"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c #(nop) CMD [\"-c\" \"echo hello from the registry\"]", "empty_layer": True})
    cfg = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMG_GREETING=hello"],
            "Entrypoint": ["/bin/sh"],
            "Cmd": ["-c", "echo hello from the registry"],
            "WorkingDir": "/opt/old",
            "ExposedPorts": {"8080/tcp": {}},
            "User": "1000",
            "Labels": {"org.netloom.test": "registry", "org.netloom.arch": extra_label},
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000, "Retries": 3},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    cdesc = lay.blob(json.dumps(cfg, separators=(",", ":")).encode(), "application/vnd.oci.image.config.v1+json")
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cdesc, "layers": descs}
    return lay.blob(json.dumps(man, separators=(",", ":")).encode(), "application/vnd.oci.image.manifest.v1+json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("--filler-mib", type=int, default=0)
    ap.add_argument("--filler-layers", type=int, default=1)
    a = ap.parse_args()
    bb = open(a.busybox, "rb").read()
    applets = subprocess.run([a.busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    base = [("bin", "dir", None, 0o755), ("bin/busybox", "file", bb, 0o755)]
    base += [("bin/" + x, "sym", "busybox", 0o777) for x in applets if x != "busybox" and "/" not in x]
    base += [
        ("etc", "dir", None, 0o755),
        ("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home:/bin/sh\n", 0o644),
        ("etc/group", "file", b"root:x:0:\nuser:x:1000:\n", 0o644),
        ("etc/gone", "file", b"this file is deleted by layer 2\n", 0o644),
        ("opt", "dir", None, 0o755),
        ("opt/old", "dir", None, 0o777),
        ("opt/old/a", "file", b"a\n", 0o644),
        ("opt/old/b", "file", b"b\n", 0o644),
        ("tmp", "dir", None, 0o1777),
        ("proc", "dir", None, 0o755), ("sys", "dir", None, 0o755), ("dev", "dir", None, 0o755),
    ]
    l1 = tar_bytes(base)
    l2 = tar_bytes([
        ("etc", "dir", None, 0o755),
        ("etc/motd", "file", b"layer two\n", 0o644),
        ("etc/.wh.gone", "file", b"", 0o644),
        ("opt/old", "dir", None, 0o777),
        ("opt/old/.wh..wh..opq", "file", b"", 0o644),
        ("opt/old/c", "file", b"c\n", 0o644),
    ])
    lay = Layout(a.out)
    manifests = []
    for arch in ["amd64", "arm64"]:
        l3 = tar_bytes([("etc", "dir", None, 0o755), ("etc/platform", "file", f"linux/{arch}\n".encode(), 0o644)])
        layers = [("/bin/sh -c #(nop) ADD busybox /", l1), ("/bin/sh -c rm /etc/gone; rm -r /opt/old/*; echo c > /opt/old/c", l2),
                  (f"/bin/sh -c echo linux/{arch} > /etc/platform", l3)]
        for k in range(a.filler_mib and a.filler_layers):
            files = [(f"filler{k}", "dir", None, 0o755)]
            files += [(f"filler{k}/{i}", "file", os.urandom(1 << 20), 0o644) for i in range(a.filler_mib)]
            layers.append((f"/bin/sh -c head -c {a.filler_mib}M /dev/urandom > /filler{k}", tar_bytes(files)))
        m = image(lay, layers, arch, arch)
        m["platform"] = {"architecture": arch, "os": "linux"}
        if arch == "arm64":
            m["platform"]["variant"] = "v8"
        manifests.append(m)
    index_data = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}, separators=(",", ":")).encode()
    idx = lay.blob(index_data, "application/vnd.oci.image.index.v1+json")
    single = dict(manifests[0])
    single.pop("platform")
    single["annotations"] = {"org.opencontainers.image.ref.name": "single"}
    idx["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
    with open(os.path.join(a.out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [single, idx]}, f)
    print(json.dumps({"single": single["digest"], "multi": idx["digest"], "amd64": manifests[0]["digest"], "arm64": manifests[1]["digest"]}))


if __name__ == "__main__":
    sys.exit(main())
