"""Fixtures for the docker-py (7.1) compatibility suite.

One netloomd per test session, started the way the Rust e2e harness
(tests/src/lib.rs) does it: inside its own network namespace (`nlpy-<pid>`)
with a private data/exec root under /tmp, a busybox image imported from a
rootfs tarball, and a teardown that removes containers, stops the daemon,
kills stray processes, unmounts, deletes the namespace and the directory.

Needs root. Without root the suite is skipped, unless NETLOOM_REQUIRE_PRIV=1,
in which case it fails (as the Rust e2e suites do).
"""

import os
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("NETLOOM_BIN_DIR", REPO / "target" / "debug"))
PREDEFINED = {"bridge", "host", "none"}


def skip_reason():
    """Why this machine cannot run the suite, or None."""
    if os.geteuid() != 0:
        return f"not root (euid {os.geteuid()}): netloomd needs root for namespaces"
    if not Path("/bin/busybox").is_file():
        return "/bin/busybox missing (apt-get install busybox-static)"
    for prog in ("ip", "nsenter", "nft", "umount"):
        if shutil.which(prog) is None:
            return f"{prog} not found in PATH"
    return None


def require_priv():
    return os.environ.get("NETLOOM_REQUIRE_PRIV") == "1"


def run(*args, check=True, timeout=30):
    p = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and p.returncode != 0:
        raise RuntimeError(f"{args} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def busybox_tar(base: Path) -> Path:
    """A rootfs tarball: bin/busybox plus one symlink per applet."""
    root = base / "rootfs"
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = run("/bin/busybox", "--list").stdout.split()
    for a in applets:
        if a == "busybox" or "/" in a:
            continue
        link = root / "bin" / a
        if not link.exists():
            link.symlink_to("busybox")
    tar = base / "busybox.tar"
    with tarfile.open(tar, "w") as t:
        t.add(root, arcname=".")
    return tar


class Daemon:
    """A netloomd in a throwaway network namespace."""

    def __init__(self):
        self.name = f"nlpy-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.dir = Path(f"/tmp/{self.name}")
        self.proc = None
        self.log_path = self.dir / "daemon.log"

    @property
    def sock(self) -> Path:
        return self.dir / "exec" / "netloom.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        run("ip", "netns", "add", self.name)
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        netloomd = BIN_DIR / "netloomd"
        if not netloomd.is_file():
            raise RuntimeError(f"{netloomd} missing: build first: cargo build --workspace")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/run/netns/{self.name}",
                    str(netloomd),
                    "--data-root",
                    str(self.dir / "data"),
                    "--exec-root",
                    str(self.dir / "exec"),
                    "--config-file",
                    str(self.dir / "none.json"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "RUST_BACKTRACE": "0"},
            )
        until = time.monotonic() + 15
        while not self.sock.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"netloomd exited early ({self.proc.returncode}); log:\n{self.log()}"
                )
            if time.monotonic() > until:
                raise RuntimeError(f"netloomd did not create {self.sock}; log:\n{self.log()}")
            time.sleep(0.05)

    def our_pids(self):
        """Processes whose cmdline mentions our dir, plus their descendants."""
        needle = f"{self.dir}/".encode()
        me = os.getpid()
        roots, parent = set(), []
        for e in os.listdir("/proc"):
            if not e.isdigit() or int(e) == me:
                continue
            pid = int(e)
            try:
                if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                    roots.add(pid)
                stat = Path(f"/proc/{pid}/stat").read_text()
                parent.append((pid, int(stat.rsplit(")", 1)[1].split()[1])))
            except (OSError, ValueError, IndexError):
                continue
        found = set(roots)
        while True:
            more = {p for p, pp in parent if pp in found} - found
            if not more:
                return sorted(found)
            found |= more

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def cleanup(self):
        problems = []
        self.stop()
        for _ in range(3):
            pids = self.our_pids()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        needle = f"{self.dir}/"
        for _ in range(3):
            with open("/proc/self/mountinfo") as f:
                mnts = [
                    l.split(" ")[4] for l in f if l.split(" ")[4].startswith(needle)
                ]
            if not mnts:
                break
            for m in sorted(mnts, key=lambda m: -m.count("/")):
                run("umount", "-l", m, check=False)
        p = run("ip", "netns", "del", self.name, check=False)
        if p.returncode != 0:
            problems.append(f"ip netns del {self.name}: {p.stderr.strip()}")
        for attempt in range(2):
            try:
                shutil.rmtree(self.dir)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if attempt:
                    problems.append(f"remove {self.dir}: {e}")
                time.sleep(0.2)
        return problems


@pytest.fixture(scope="session")
def daemon():
    reason = skip_reason()
    if reason:
        if require_priv():
            pytest.fail(f"prerequisites missing (NETLOOM_REQUIRE_PRIV=1): {reason}", pytrace=False)
        pytest.skip(reason)
    d = Daemon()
    try:
        d.start()
        yield d
    finally:
        problems = d.cleanup()
        if problems:
            pytest.fail(f"cleanup problems: {problems}", pytrace=False)


@pytest.fixture(scope="session")
def client(daemon):
    import docker

    c = docker.DockerClient(base_url=daemon.url, version="auto", timeout=30)
    tar = busybox_tar(daemon.dir / "bb")
    c.api.import_image(src=str(tar), repository="busybox", tag="latest")
    try:
        yield c
    finally:
        # Remove all containers while the daemon still runs (teardown of `daemon` stops it).
        try:
            for ctr in c.containers.list(all=True):
                ctr.remove(force=True)
        except Exception as e:  # noqa: BLE001 - report, but go on tearing down
            print(f"container cleanup failed: {e!r}")
        c.close()


@pytest.fixture
def clean(client):
    """Gives the client; afterwards removes the test's containers and user networks."""
    yield client
    for ctr in client.containers.list(all=True):
        ctr.remove(force=True)
    for net in client.networks.list():
        if net.name not in PREDEFINED:
            net.remove()


@pytest.fixture
def uniq():
    """A short unique name prefix for this test's objects."""
    return f"py{uuid.uuid4().hex[:6]}"
