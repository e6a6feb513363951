"""The real-server program of the LVS lab (`tests/kernel/lvs_lab.py`).

    python3 lab_server.py --name NAME --port PORT [--host ADDRESS]

Listens on TCP ADDRESS:PORT (default every address, so a DR real server also takes
the VIP it holds on lo), prints "ready" on stdout once it listens, and answers every
line a client sends with "NAME LINE" on the same connection, which it keeps open
until the client closes it. One line is special: "?peer" is answered with
"NAME peer HOST:PORT", the client address the server sees (NAT must preserve it).

Standard library only, one thread: it starts fast inside the slow guest. SIGTERM
stops it.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import sys

SEND_TIMEOUT = 2.0


def serve(name: str, host: str, port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.data is None:
                try:
                    conn, peer = listener.accept()
                except BlockingIOError:
                    continue
                # Readable means recv will not block; sends may wait up to the timeout.
                conn.settimeout(SEND_TIMEOUT)
                selector.register(conn, selectors.EVENT_READ, [b"", peer])
                continue
            conn = key.fileobj
            state = key.data
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
                continue
            state[0] += data
            try:
                while b"\n" in state[0]:
                    line, state[0] = state[0].split(b"\n", 1)
                    text = line.decode(errors="replace").rstrip("\r")
                    if text == "?peer":
                        text = f"peer {state[1][0]}:{state[1][1]}"
                    conn.sendall(f"{name} {text}\n".encode())
            except OSError:
                selector.unregister(conn)
                conn.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.name, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
