"""docker-py 7.1 pulling from a real registry: Debian's docker-registry in the session
daemon's network namespace (127.0.0.1:5000 open, 127.0.0.1:5001 with basic auth),
images pushed by skopeo from the OCI layout of tests/registry/mkimage.py."""

import crypt  # deprecated, still in 3.11: bcrypt for the htpasswd line
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, require_priv, run

SCRIPTS = REPO / "tests" / "registry"


def tools_missing():
    for b in ("/usr/bin/docker-registry", "/usr/bin/skopeo"):
        if not Path(b).is_file():
            return f"{b} missing (scripts/deps.sh)"
    return None


def start_registry(daemon, name, port, htpasswd=None):
    d = daemon.dir / f"registry-{name}"
    (d / "data").mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd:
        (d / "htpasswd").write_text(htpasswd)
        auth = f"auth:\n  htpasswd:\n    realm: t\n    path: {d / 'htpasswd'}\n"
    (d / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    log = open(d / "registry.log", "wb")
    p = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{daemon.name}", "/usr/bin/docker-registry", "serve", str(d / "config.yml")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )
    until = time.monotonic() + 15
    while True:
        probe = run("nsenter", f"--net=/run/netns/{daemon.name}", "python3", "-c",
                    f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)", check=False)
        if probe.returncode == 0:
            return p
        if time.monotonic() > until:
            raise RuntimeError(f"registry {name} did not start: {(d / 'registry.log').read_text()}")
        time.sleep(0.1)


def push(daemon, src, dest, creds=None):
    args = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
    if creds:
        args.append(f"--dest-creds={creds}")
    args += [src, f"docker://{dest}"]
    script = ("mkdir -p /var/lib/containers/cache && mount -t tmpfs none /var/lib/containers/cache && exec "
              + " ".join(f"'{a}'" for a in args))
    run("nsenter", f"--net=/run/netns/{daemon.name}", "unshare", "-m", "sh", "-c", script, timeout=120)


@pytest.fixture(scope="module")
def registry(daemon, client):
    reason = tools_missing()
    if reason:
        if require_priv():
            pytest.fail(f"prerequisites missing (NETLOOM_REQUIRE_PRIV=1): {reason}", pytrace=False)
        pytest.skip(reason)
    oci = daemon.dir / "oci"
    run("python3", str(SCRIPTS / "mkimage.py"), str(oci))
    hashed = crypt.crypt("pw", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    procs = [start_registry(daemon, "open", 5000), start_registry(daemon, "auth", 5001, f"bob:{hashed}\n")]
    try:
        push(daemon, f"oci:{oci}:single", "127.0.0.1:5000/py/bb:single")
        run("nsenter", f"--net=/run/netns/{daemon.name}", "unshare", "-m", "sh", "-c",
            "mkdir -p /var/lib/containers/cache && mount -t tmpfs none /var/lib/containers/cache && "
            f"exec skopeo copy -q --all --dest-tls-verify=false oci:{oci}:multi docker://127.0.0.1:5000/py/bb:multi",
            timeout=120)
        push(daemon, f"oci:{oci}:single", "127.0.0.1:5001/private/bb:1", creds="bob:pw")
        yield oci
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_pull_and_inspect(registry, client):
    img = client.images.pull("127.0.0.1:5000/py/bb", tag="single")
    assert img.id.startswith("sha256:")
    assert "127.0.0.1:5000/py/bb:single" in img.tags
    assert img.attrs["RepoDigests"][0].startswith("127.0.0.1:5000/py/bb@sha256:")
    assert img.attrs["Config"]["User"] == "1000"
    assert img.attrs["Config"]["Labels"]["org.netloom.test"] == "registry"
    out = client.containers.run("127.0.0.1:5000/py/bb:single", remove=True)
    assert out == b"hello from the registry\n"
    out = client.containers.run("127.0.0.1:5000/py/bb:single", ["-c", "ls -A /opt/old; cat /etc/motd"], remove=True)
    assert out == b"c\nlayer two\n"


def test_pull_platform_and_low_level_stream(registry, client):
    img = client.images.pull("127.0.0.1:5000/py/bb:multi", platform="linux/arm64")
    assert img.attrs["Architecture"] == "arm64"
    msgs = [m for m in client.api.pull("127.0.0.1:5000/py/bb", tag="multi", stream=True, decode=True)]
    assert msgs[0] == {"status": "Pulling from py/bb", "id": "multi"}
    assert msgs[-1]["status"].startswith("Status: Downloaded newer image for 127.0.0.1:5000/py/bb:multi")
    assert any(m.get("status") == "Already exists" for m in msgs)


def test_pull_errors(registry, client):
    import docker

    with pytest.raises(docker.errors.NotFound) as e:
        client.images.pull("127.0.0.1:5000/py/nope", tag="1")
    assert "manifest for 127.0.0.1:5000/py/nope:1 not found" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        client.images.pull("127.0.0.1:5001/private/bb", tag="1")
    assert "may require 'docker login'" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        client.images.pull("127.0.0.1:5000/py/bb", tag="single", platform="linux/s390x")
    assert "does not match the specified platform" in str(e.value)


def test_pull_with_credentials(registry, client):
    img = client.images.pull("127.0.0.1:5001/private/bb", tag="1", auth_config={"username": "bob", "password": "pw"})
    assert "127.0.0.1:5001/private/bb:1" in img.tags


def test_save_load_tag_history(registry, client):
    img = client.images.pull("127.0.0.1:5000/py/bb", tag="single")
    assert img.tag("py/renamed", "v1")
    data = b"".join(client.images.get("py/renamed:v1").save(named="py/renamed:v1"))
    assert len(data) > 1 << 20
    client.images.remove("py/renamed:v1")
    loaded = client.images.load(data)
    assert [i.id for i in loaded] == [img.id]
    assert "py/renamed:v1" in client.images.get(img.id).tags
    hist = img.history()
    assert hist[0]["Id"] == img.id and len(hist) == 4
    assert hist[-1]["CreatedBy"] == "/bin/sh -c #(nop) ADD busybox /"
