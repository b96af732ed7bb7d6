#!/usr/bin/env python3
"""A registry token endpoint (Docker's token auth: the registry answers 401 with
`WWW-Authenticate: Bearer realm=...`, the client asks here, with basic credentials, for
a JWT the registry trusts). For the registry tests only.

    token_server.py ADDR:PORT KEY.pem CERT.pem USER PASSWORD SERVICE ISSUER

Tokens are RS256 JWTs signed with KEY (by the openssl CLI), with CERT in their `x5c`
header; the registry is configured with CERT as `rootcertbundle`. Right credentials
get pull and push access to the scope asked; no credentials get a token without
access (as Docker Hub does); wrong ones get 401.
"""
import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    addr, key, cert, user, password, service, issuer = sys.argv[1:8]
    host, port = addr.rsplit(":", 1)
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}

    def token(access):
        now = int(time.time())
        claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(time.time_ns()), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                             input=signing_input.encode(), capture_output=True, check=True).stdout
        return f"{signing_input}.{b64(sig)}"

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(u.query)
            auth = self.headers.get("Authorization", "")
            access = []
            if auth.startswith("Basic "):
                got = base64.b64decode(auth[6:]).decode(errors="replace")
                if got != f"{user}:{password}":
                    body = json.dumps({"details": "incorrect username or password"}).encode()
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                for s in q.get("scope", []):
                    kind, _, rest = s.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
            t = token(access)
            body = json.dumps({"token": t, "access_token": t, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer((host, int(port)), H)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
