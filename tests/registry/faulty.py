#!/usr/bin/env python3
"""A registry front that misbehaves, for the registry tests.

    faulty.py LISTEN_PORT UPSTREAM_PORT MODE [MIN_BYTES]

MODE `hang`: accepts connections and never answers.
MODE `reset-blob` / `hang-blob`: proxies requests to the registry on UPSTREAM_PORT
(127.0.0.1), except that a blob answer of at least MIN_BYTES (default 100000) is cut
after half of its body: the connection is reset (RST), or left hanging.
One request per connection (it asks the upstream for `Connection: close`).
"""
import socket
import struct
import sys
import threading
import time


def recv_headers(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def handle(c, upstream, mode, min_bytes):
    try:
        head, rest = recv_headers(c)
        if head is None:
            return
        lines = head.split(b"\r\n")
        hdrs = [l for l in lines[1:] if not l.lower().startswith(b"connection:")]
        req = b"\r\n".join([lines[0]] + hdrs + [b"Connection: close"]) + b"\r\n\r\n" + rest
        u = socket.create_connection(("127.0.0.1", upstream))
        u.sendall(req)
        rhead, body = recv_headers(u)
        if rhead is None:
            return
        length = None
        for l in rhead.split(b"\r\n")[1:]:
            k, _, v = l.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        is_blob = b"/blobs/" in lines[0] and lines[0].startswith(b"GET")
        if not (is_blob and length is not None and length >= min_bytes):
            c.sendall(rhead + b"\r\n\r\n" + body)
            while True:
                d = u.recv(65536)
                if not d:
                    break
                c.sendall(d)
            return
        half = length // 2
        while len(body) < half:
            d = u.recv(65536)
            if not d:
                break
            body += d
        c.sendall(rhead + b"\r\n\r\n" + body[:half])
        if mode == "reset-blob":
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            return
        time.sleep(3600)
    except OSError:
        pass
    finally:
        try:
            c.close()
        except OSError:
            pass


def main():
    port, upstream, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    min_bytes = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    print("ready", flush=True)
    held = []
    deadline = time.time() + 600
    while time.time() < deadline:
        c, _ = ls.accept()
        if mode == "hang":
            held.append(c)
            continue
        threading.Thread(target=handle, args=(c, upstream, mode, min_bytes), daemon=True).start()


if __name__ == "__main__":
    main()
