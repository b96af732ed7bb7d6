#!/usr/bin/env python3
"""Test plugin for netloom's e2e tests: a remote network driver AND a remote IPAM driver
(Docker's plugin protocol v1) on a Unix socket, stdlib only.

usage: tplugin.py SOCKET LOG CONTROL

- Every call is appended to LOG as one JSON line: {"method": M, "body": <request JSON or null>}.
- CONTROL is a JSON file read on every call:
    {"fail": {"Method": "text" | {"msg": "text", "status": 500}},
     "hang": ["Method", ...],
     "hold": ["Method", ...],   (waits while the method is listed here: the test lets the
                                 call go on by rewriting the file; then answers as the
                                 file says by then, e.g. with a "fail")
     "delay": {"Method": seconds, ...},   (answers normally after that long)
     "prefix": "eth",          (Join's DstPrefix)
     "nogw": false,            (true: Join answers no Gateway)
     "gwalloc": {"SkipIPv4": true, "SkipIPv6": false}}
                               (GetCapabilities says GwAllocChecker; GwAllocCheck answers it)
  A failing driver method answers {"Err": text}, an IPAM method {"Error": text}
  (HTTP 200 unless "status" is given). A hanging method never answers.
- Leave appends "<endpoint id> back|missing" to LOG.leave: whether the interface was
  handed back to the plugin's namespace under its SrcName before Leave.
- Join creates a real veth pair in the plugin's own network namespace (run it in the
  daemon's namespace): SrcName "tp<8 hex>" goes to the container, "tq<8 hex>" stays.
"""
import ipaddress, json, os, socketserver, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler

LOCK = threading.Lock()
POOLS = {}       # pool id -> {"net": ip_network, "used": set()}
NETS = {}        # network id -> IPv4 gateway (from CreateNetwork's IPv4Data)
EPS = {}         # endpoint id -> network id


def log(method, body):
    with LOCK, open(LOG, "a") as f:
        f.write(json.dumps({"method": method, "body": body}) + "\n")


def control(default=None):
    try:
        with open(CONTROL) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {} if default is None else default


def ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def handle(method, req):
    c = control()
    while method in c.get("hold", []):
        time.sleep(0.05)
        c = control(c)
    if method in c.get("hang", []):
        time.sleep(3600)
    if method in c.get("delay", {}):
        time.sleep(float(c["delay"][method]))
    f = c.get("fail", {}).get(method)
    if f is not None:
        msg, status = (f, 200) if isinstance(f, str) else (f["msg"], f.get("status", 200))
        return status, ({"Error": msg} if method.startswith("IpamDriver.") else {"Err": msg})
    if method == "Plugin.Activate":
        return 200, {"Implements": ["NetworkDriver", "IpamDriver"]}
    if method == "NetworkDriver.GetCapabilities":
        caps = {"Scope": "local", "ConnectivityScope": "local"}
        if "gwalloc" in c:
            caps["GwAllocChecker"] = True
        return 200, caps
    if method == "NetworkDriver.GwAllocCheck":
        return 200, c.get("gwalloc", {})
    if method == "NetworkDriver.EndpointOperInfo":
        return 200, {"Value": {"plugin": "tplug", "endpoint": req.get("EndpointID")}}
    if method == "NetworkDriver.CreateNetwork":
        v4 = req.get("IPv4Data") or []
        NETS[req["NetworkID"]] = (v4[0].get("Gateway") or "").split("/")[0] if v4 else ""
        return 200, {}
    if method == "NetworkDriver.DeleteNetwork":
        NETS.pop(req["NetworkID"], None)
        return 200, {}
    if method == "NetworkDriver.CreateEndpoint":
        EPS[req["EndpointID"]] = req["NetworkID"]
        iface = req.get("Interface") or {}
        if iface.get("MacAddress"):
            return 200, {"Interface": {}}
        # The daemon sent no MAC: the driver supplies one (as Docker allows).
        return 200, {"Interface": {"MacAddress": "02:aa:bb:cc:dd:" + req["EndpointID"][:2]}}
    if method == "NetworkDriver.Join":
        eid = req["EndpointID"][:8]
        src, peer = "tp" + eid, "tq" + eid
        ip("link", "del", peer)
        r = ip("link", "add", src, "type", "veth", "peer", "name", peer)
        if r.returncode != 0:
            return 200, {"Err": "cannot create veth: " + r.stderr.strip()}
        ip("link", "set", peer, "up")
        gw = "" if c.get("nogw") else (c.get("gw") or NETS.get(req["NetworkID"], ""))
        routes = [{"Destination": "10.98.0.0/16", "RouteType": 1}]
        if gw:
            routes.append({"Destination": "10.99.0.0/16", "RouteType": 0, "NextHop": gw})
        return 200, {"InterfaceName": {"SrcName": src, "DstPrefix": c.get("prefix", "eth")},
                     "Gateway": gw,
                     "StaticRoutes": routes, "DisableGatewayService": False}
    if method == "NetworkDriver.Leave":
        # Record whether the daemon handed the interface back (it must, before Leave).
        back = ip("link", "show", "tp" + req["EndpointID"][:8]).returncode == 0
        with LOCK, open(LOG + ".leave", "a") as f:
            f.write(f'{req["EndpointID"]} {"back" if back else "missing"}\n')
        return 200, {}
    if method == "NetworkDriver.DeleteEndpoint":
        eid = req["EndpointID"][:8]
        ip("link", "del", "tq" + eid)
        ip("link", "del", "tp" + eid)
        EPS.pop(req["EndpointID"], None)
        return 200, {}
    if method in ("NetworkDriver.ProgramExternalConnectivity",
                  "NetworkDriver.RevokeExternalConnectivity"):
        return 200, {}
    if method == "IpamDriver.GetCapabilities":
        return 200, {"RequiresMACAddress": False, "RequiresRequestReplay": False}
    if method == "IpamDriver.GetDefaultAddressSpaces":
        return 200, {"LocalDefaultAddressSpace": "LocalDefault",
                     "GlobalDefaultAddressSpace": "GlobalDefault"}
    if method == "IpamDriver.RequestPool":
        pool = req.get("Pool") or ("fd00:77::/64" if req.get("V6") else "10.77.0.0/24")
        pid = f'{req.get("AddressSpace")}/{pool}'
        POOLS.setdefault(pid, {"net": ipaddress.ip_network(pool), "used": set()})
        return 200, {"PoolID": pid, "Pool": pool, "Data": {}}
    if method == "IpamDriver.ReleasePool":
        POOLS.pop(req.get("PoolID"), None)
        return 200, {}
    if method == "IpamDriver.RequestAddress":
        p = POOLS.get(req.get("PoolID"))
        if not p:
            return 200, {"Error": f'unknown pool {req.get("PoolID")}'}
        want = req.get("Address")
        cands = [ipaddress.ip_address(want)] if want else p["net"].hosts()
        for a in cands:
            if a not in p["used"]:
                p["used"].add(a)
                return 200, {"Address": f"{a}/{p['net'].prefixlen}", "Data": {}}
        return 200, {"Error": "no available addresses on this pool"}
    if method == "IpamDriver.ReleaseAddress":
        p = POOLS.get(req.get("PoolID"))
        if p and req.get("Address"):
            p["used"].discard(ipaddress.ip_address(req["Address"].split("/")[0]))
        return 200, {}
    return 404, {"Err": f"unknown method {method}"}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):
        return "unix"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        method = self.path.lstrip("/")
        try:
            req = json.loads(raw) if raw.strip() else None
        except ValueError:
            req = None
        log(method, req)
        code, body = handle(method, req or {})
        out = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    SOCK, LOG, CONTROL = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    S(SOCK, H).serve_forever()
