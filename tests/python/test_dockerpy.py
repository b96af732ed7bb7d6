"""docker-py 7.1 against netloomd: the calls and sequences of interfaces.md §1.5."""

import time

import pytest

from conftest import require_priv, skip_reason

_reason = skip_reason()
if _reason:
    if require_priv():
        pytest.fail(
            f"docker-py suite cannot run and NETLOOM_REQUIRE_PRIV=1: {_reason}",
            pytrace=False,
        )
    pytest.skip(f"docker-py suite skipped: {_reason}", allow_module_level=True)

import docker  # noqa: E402
from docker.errors import APIError, NotFound  # noqa: E402

IMAGE = "busybox"
SLEEP = ["sleep", "100000"]


def wait_until(f, timeout=10.0, step=0.1):
    until = time.monotonic() + timeout
    while True:
        v = f()
        if v or time.monotonic() > until:
            return v
        time.sleep(step)


# --- system -------------------------------------------------------------------------


def test_version_info_ping(client):
    assert client.ping() is True
    assert client.api.api_version == "1.47"
    v = client.version()
    assert v["ApiVersion"] == "1.47"
    assert v["MinAPIVersion"] == "1.24"
    assert v["Os"] == "linux"
    info = client.info()
    assert info["ID"] and info["Name"]
    assert "ServerVersion" in info


def test_unversioned_and_unknown_paths(client):
    # Same answer with and without the /v1.NN prefix.
    r = client.api.get(client.api.base_url + "/version")
    assert r.status_code == 200 and r.json()["ApiVersion"] == "1.47"
    r = client.api.get(client.api.base_url + "/v1.47/nosuch/path")
    assert r.status_code == 501
    assert r.json() == {"message": "netloom does not implement GET /nosuch/path"}
    r = client.api.post(client.api.base_url + "/nosuch")
    assert r.status_code == 501
    assert r.json() == {"message": "netloom does not implement POST /nosuch"}
    r = client.api.get(client.api.base_url + "/v1.99/version")
    assert r.status_code == 400
    assert "too new" in r.json()["message"]


# --- images -------------------------------------------------------------------------


def test_images_list_and_get(client):
    tags = [t for i in client.images.list() for t in i.tags]
    assert "busybox:latest" in tags
    img = client.images.get(IMAGE)
    assert "busybox:latest" in img.tags
    assert img.id.startswith("sha256:")
    with pytest.raises(NotFound):
        client.images.get("nosuchimage:latest")


def test_image_import_with_new_tag(client, daemon):
    tar = daemon.dir / "bb" / "busybox.tar"
    client.api.import_image(src=str(tar), repository="pyimport", tag="v1")
    assert "pyimport:v1" in client.images.get("pyimport:v1").tags
    assert any("pyimport:v1" in i.tags for i in client.images.list())
    client.images.remove("pyimport:v1")
    with pytest.raises(NotFound):
        client.images.get("pyimport:v1")


# --- networks -----------------------------------------------------------------------


def test_predefined_networks(clean):
    names = {n.name for n in clean.networks.list()}
    assert {"bridge", "host", "none"} <= names
    bridge = clean.networks.get("bridge")
    assert bridge.attrs["Driver"] == "bridge"
    assert [n.name for n in clean.networks.list(names=["bridge"], filters={"driver": "bridge"})] == [
        "bridge"
    ]


def test_network_create_get_list_remove(clean, uniq):
    net = clean.networks.create(
        f"{uniq}-net",
        driver="bridge",
        ipam=docker.types.IPAMConfig(
            pool_configs=[
                docker.types.IPAMPool(
                    subnet="10.66.0.0/16", iprange="10.66.1.0/24", gateway="10.66.0.1"
                )
            ]
        ),
        labels={"a": "b"},
        attachable=True,
    )
    assert net.name == f"{uniq}-net"
    assert len(net.id) == 64
    got = clean.networks.get(f"{uniq}-net")
    assert got.id == net.id
    assert got.attrs["Labels"] == {"a": "b"}
    cfg = got.attrs["IPAM"]["Config"][0]
    assert cfg["Subnet"] == "10.66.0.0/16"
    assert cfg["Gateway"] == "10.66.0.1"
    # Lookup by ID prefix, and list filters (name is a substring match).
    assert clean.networks.get(net.id[:12]).id == net.id
    assert [n.id for n in clean.networks.list(names=[uniq])] == [net.id]
    assert [n.id for n in clean.networks.list(filters={"label": "a=b"})] == [net.id]
    assert [n.id for n in clean.networks.list(filters={"type": "custom"})] == [net.id]
    assert clean.networks.list(names=[uniq], filters={"driver": "host"}) == []
    net.remove()
    with pytest.raises(NotFound):
        clean.networks.get(f"{uniq}-net")


def test_network_errors(clean, uniq):
    with pytest.raises(NotFound) as e:
        clean.networks.get(f"{uniq}-missing")
    assert e.value.explanation == f"network {uniq}-missing not found"
    clean.networks.create(f"{uniq}-dup")
    with pytest.raises(APIError) as e:
        clean.networks.create(f"{uniq}-dup")
    assert e.value.status_code == 409
    assert e.value.explanation == f"network with name {uniq}-dup already exists"
    with pytest.raises(APIError) as e:
        clean.networks.get("bridge").remove()
    assert e.value.status_code == 403
    assert e.value.explanation == "bridge is a pre-defined network and cannot be removed"
    with pytest.raises(APIError) as e:
        clean.networks.list(filters={"foo": "x"})
    assert e.value.status_code == 400


def test_network_prune(clean, uniq):
    unused = clean.networks.create(f"{uniq}-unused")
    used = clean.networks.create(f"{uniq}-used")
    clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c", network=used.name)
    out = clean.networks.prune()
    assert out["NetworksDeleted"] == [unused.name]
    names = {n.name for n in clean.networks.list()}
    assert used.name in names and unused.name not in names
    assert {"bridge", "host", "none"} <= names


# --- containers ---------------------------------------------------------------------


def test_run_detached_on_network_with_ports(clean, uniq):
    net = clean.networks.create(f"{uniq}-net")
    c = clean.containers.run(
        IMAGE,
        ["sh", "-c", "echo hello; echo oops >&2; exec sleep 100000"],
        detach=True,
        name=f"{uniq}-c",
        network=net.name,
        ports={"80/tcp": 8080, "53/udp": ("127.0.0.1", 5353)},
    )
    assert c.name == f"{uniq}-c"
    c.reload()
    assert c.status == "running"
    assert c.attrs["HostConfig"]["LogConfig"]["Type"]
    nets = c.attrs["NetworkSettings"]["Networks"]
    assert list(nets) == [net.name]
    assert nets[net.name]["IPAddress"]
    assert c.ports["80/tcp"][0]["HostPort"] == "8080"
    assert c.ports["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "5353"}]

    got = clean.containers.get(f"{uniq}-c")
    assert got.id == c.id
    assert clean.containers.get(c.id[:12]).id == c.id

    listed = clean.containers.list(all=True, filters={"network": net.name})
    assert [x.id for x in listed] == [c.id]
    assert clean.containers.list(all=True, filters={"network": "none"}) == []

    net.reload()
    assert c.id in net.attrs["Containers"]

    assert wait_until(lambda: b"hello" in c.logs())
    assert c.logs(stdout=True, stderr=False) == b"hello\n"
    assert c.logs(stdout=False, stderr=True) == b"oops\n"

    c.remove(force=True)
    with pytest.raises(NotFound):
        clean.containers.get(c.id)


def test_exec_run(clean, uniq):
    c = clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c")
    c.reload()
    r = c.exec_run(["hostname"])
    assert r.exit_code == 0
    assert r.output == (c.attrs["Config"]["Hostname"] + "\n").encode()
    assert r.output == (c.id[:12] + "\n").encode()
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert r.exit_code == 3
    assert b"out\n" in r.output and b"err\n" in r.output
    r = c.exec_run(["sh", "-c", "echo a; echo b >&2"], demux=True)
    assert r.output == (b"a\n", b"b\n")


def test_exec_run_without_stderr(clean, uniq):
    c = clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c")
    r = c.exec_run(["sh", "-c", "echo only-out; echo err >&2"], stderr=False)
    assert r.exit_code == 0
    assert r.output == b"only-out\n"


def test_run_foreground_remove(clean):
    before = {c.id for c in clean.containers.list(all=True)}
    assert clean.containers.run(IMAGE, "echo hi", remove=True) == b"hi\n"
    assert {c.id for c in clean.containers.list(all=True)} == before


def test_run_foreground_nonzero_exit(clean):
    with pytest.raises(docker.errors.ContainerError) as e:
        clean.containers.run(IMAGE, ["sh", "-c", "echo bad >&2; exit 7"], remove=True)
    assert e.value.exit_status == 7
    assert e.value.stderr == b"bad\n"


def test_network_connect_disconnect(clean, uniq):
    net = clean.networks.create(f"{uniq}-net")
    c = clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c")
    c.reload()
    assert set(c.attrs["NetworkSettings"]["Networks"]) == {"bridge"}
    net.connect(c, aliases=["web"])
    c.reload()
    nets = c.attrs["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", net.name}
    assert "web" in (nets[net.name]["Aliases"] or [])
    net.reload()
    assert [x.id for x in net.containers] == [c.id]
    # The new interface is there inside the container.
    r = c.exec_run(["ip", "-o", "-4", "addr", "show"])
    assert r.exit_code == 0
    assert nets[net.name]["IPAddress"].encode() in r.output
    with pytest.raises(APIError):
        net.connect(c)  # already attached
    net.disconnect(c)
    c.reload()
    assert set(c.attrs["NetworkSettings"]["Networks"]) == {"bridge"}
    net.reload()
    assert net.containers == []
    # Disconnecting again fails, via the network found by name.
    with pytest.raises(APIError):
        clean.networks.get(net.name).disconnect(c, force=True)


def test_container_errors(clean, uniq):
    with pytest.raises(NotFound):
        clean.containers.get(f"{uniq}-missing")
    # A missing network at create: 404 would make the docker CLI pull and retry, so the
    # daemon may answer 400; either way the message names the network.
    with pytest.raises(APIError) as e:
        clean.containers.run(IMAGE, SLEEP, detach=True, network=f"{uniq}-nonet")
    assert e.value.status_code in (400, 404)
    assert e.value.explanation == f"network {uniq}-nonet not found"
    with pytest.raises(docker.errors.ImageNotFound):
        clean.containers.create("nosuchimage:1", SLEEP)
    # run() then tries to pull from Docker Hub, which is out of reach here (503; pulls
    # from a registry that answers are in test_registry.py).
    with pytest.raises(APIError) as e:
        clean.containers.run("nosuchimage:1", SLEEP, detach=True)
    assert e.value.status_code == 503
    assert "https://index.docker.io" in e.value.explanation
    c = clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c")
    with pytest.raises(APIError) as e:
        clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c")
    assert e.value.status_code == 409
    with pytest.raises(APIError) as e:
        c.remove()
    assert e.value.status_code == 409
    with pytest.raises(NotFound):
        clean.networks.get("bridge").connect(f"{uniq}-missing")
    c.remove(force=True)


def test_connect_with_static_ip_and_prune_filters(clean, uniq):
    net = clean.networks.create(
        f"{uniq}-net",
        ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet="10.67.0.0/24", gateway="10.67.0.1")]
        ),
    )
    c = clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c", network="none")
    other = clean.networks.create(f"{uniq}-other")
    # "none" cannot be combined with other networks.
    with pytest.raises(APIError):
        other.connect(c)
    c.remove(force=True)
    c = clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c2")
    net.connect(c.id, ipv4_address="10.67.0.50", aliases=["db"])
    c.reload()
    ep = c.attrs["NetworkSettings"]["Networks"][net.name]
    assert ep["IPAddress"] == "10.67.0.50"
    assert ep["Gateway"] == "10.67.0.1"
    assert c.exec_run(["ping", "-c", "1", "-W", "2", "10.67.0.1"]).exit_code == 0
    # Networks newer than 24h are kept by an until=24h prune.
    assert clean.networks.prune(filters={"until": "24h"})["NetworksDeleted"] in (None, [])
    assert other.name in {n.name for n in clean.networks.list(greedy=True)}
    net.disconnect(c.id, force=True)
    assert sorted(clean.networks.prune()["NetworksDeleted"]) == sorted([net.name, other.name])


def test_container_lifecycle(clean, uniq):
    c = clean.containers.run(IMAGE, SLEEP, detach=True, name=f"{uniq}-c")
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    assert clean.containers.list(filters={"name": f"{uniq}-c"}) == []
    assert [x.id for x in clean.containers.list(all=True, filters={"status": "exited"})] == [c.id]
    c.start()
    c.reload()
    assert c.status == "running"
    c.restart(timeout=1)
    c.reload()
    assert c.status == "running"
    c.kill()
    assert c.wait(timeout=10)["StatusCode"] == 137
    assert clean.containers.prune()["ContainersDeleted"] == [c.id]
    with pytest.raises(NotFound):
        c.reload()


# --- interactive: attach sockets, resize, events ------------------------------------


def _read_until(sock, needle, timeout=10.0):
    """Reads from a raw socket until `needle` shows up; returns everything read."""
    sock.settimeout(timeout)
    data = b""
    until = time.monotonic() + timeout
    while needle not in data and time.monotonic() < until:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _raw(sock):
    return getattr(sock, "_sock", sock)


def test_attach_socket_tty_resize_and_exit_code(clean, uniq):
    c = clean.containers.run(
        IMAGE, ["sh"], name=f"{uniq}t", stdin_open=True, tty=True, detach=True
    )
    assert c.attrs["Config"]["Tty"] is True
    s = _raw(clean.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1}))
    s.sendall(b"echo $((6*7))x\n")
    assert b"42x" in _read_until(s, b"42x")
    clean.api.resize(c.id, height=44, width=132)
    s.sendall(b"stty size\n")
    assert b"44 132" in _read_until(s, b"44 132")
    s.sendall(b"exit 3\n")
    assert c.wait(timeout=10)["StatusCode"] == 3
    s.close()


def test_attach_tty_session_ends_when_client_closes_input(clean, uniq):
    # As moby: with a terminal, closing the attached input ends the session (EOF to the
    # client) while the container and its terminal go on.
    import socket as _socket
    import time

    c = clean.containers.run(
        IMAGE, ["sh"], name=f"{uniq}h", stdin_open=True, tty=True, detach=True
    )
    s = _raw(clean.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1}))
    s.sendall(b"echo hi-$((2*3))\n")
    assert b"hi-6" in _read_until(s, b"hi-6")
    s.shutdown(_socket.SHUT_WR)
    s.settimeout(10)
    start = time.monotonic()
    while s.recv(4096):
        pass
    assert time.monotonic() - start < 8, "the session did not end with the client's input"
    s.close()
    c.reload()
    assert c.status == "running"
    s = _raw(clean.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1}))
    s.sendall(b"exit 4\n")
    assert c.wait(timeout=10)["StatusCode"] == 4
    s.close()


def test_attach_socket_stdin_once_without_tty(clean, uniq):
    api = clean.api
    # docker-py sets AttachStdin and StdinOnce with stdin_open.
    cid = api.create_container(IMAGE, ["cat"], name=f"{uniq}i", stdin_open=True)["Id"]
    s = _raw(
        api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    )
    api.start(cid)
    s.sendall(b"hello\n")
    import socket as _socket

    s.shutdown(_socket.SHUT_WR)  # closes cat's stdin (StdinOnce)
    data = _read_until(s, b"\x00never")
    # One multiplexed stdout frame.
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n", data
    assert api.wait(cid, timeout=10)["StatusCode"] == 0
    assert api.logs(cid) == b"hello\n"


def test_attach_logs_replays_interactive_containers(clean, uniq):
    # container.attach(logs=True): the log so far, raw for a terminal, demultiplexed
    # by docker-py otherwise.
    t = clean.containers.run(
        IMAGE, ["sh", "-c", "echo tty-$((3*4))"], name=f"{uniq}lt", tty=True, detach=True
    )
    assert t.wait(timeout=10)["StatusCode"] == 0
    assert t.attach(stdout=True, stderr=True, stream=False, logs=True) == b"tty-12\r\n"
    i = clean.containers.run(
        IMAGE,
        ["sh", "-c", "echo out-1; echo err-2 >&2"],
        name=f"{uniq}li",
        stdin_open=True,
        detach=True,
    )
    assert i.wait(timeout=10)["StatusCode"] == 0
    assert i.attach(stdout=True, stderr=False, stream=False, logs=True) == b"out-1\n"
    assert i.attach(stdout=False, stderr=True, stream=False, logs=True) == b"err-2\n"


def test_exec_tty_resize(clean, uniq):
    c = clean.containers.run(IMAGE, SLEEP, name=f"{uniq}e", detach=True)
    api = clean.api
    eid = api.exec_create(c.id, ["sh"], stdin=True, tty=True)["Id"]
    s = _raw(api.exec_start(eid, socket=True, tty=True))
    api.exec_resize(eid, height=37, width=111)
    s.sendall(b"stty size\n")
    assert b"37 111" in _read_until(s, b"37 111")
    s.sendall(b"exit 4\n")
    assert wait_until(lambda: api.exec_inspect(eid)["ExitCode"] == 4)


def test_events_since_until_filters(clean, uniq):
    t0 = time.time() - 1
    net = clean.networks.create(f"{uniq}n")
    net.remove()
    t1 = time.time() + 0.5
    evs = list(
        clean.events(
            since=t0, until=t1, decode=True, filters={"type": "network", "network": f"{uniq}n"}
        )
    )
    assert [(e["Type"], e["Action"]) for e in evs] == [
        ("network", "create"),
        ("network", "destroy"),
    ], evs
    assert all(e["Actor"]["Attributes"]["name"] == f"{uniq}n" for e in evs)
