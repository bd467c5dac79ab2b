#!/usr/bin/env python3
"""A minimal AWS Lambda Runtime API on 127.0.0.1, for running a function binary
(built on lambda_runtime) outside Lambda in tests.

    lambda_runtime_emulator.py --port P --events-dir DIR

Each file DIR/<n>.json (n = 0, 1, ...) is one event, handed out in order by
GET /2018-06-01/runtime/invocation/next once it exists (the test writes them); the
function's answer is written to DIR/<n>.response.json (or <n>.error.json) by
POST /2018-06-01/runtime/invocation/<id>/response|error. Deadlines are 60 s ahead.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"next": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("emulator: " + (fmt % args) + "\n")

    def send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self.send(200, b"ok")
            return
        if self.path != "/2018-06-01/runtime/invocation/next":
            self.send(404)
            return
        while True:
            with LOCK:
                n = STATE["next"]
                path = os.path.join(self.server.events_dir, f"{n}.json")
                if os.path.exists(path):
                    STATE["next"] = n + 1
                    break
            time.sleep(0.05)
        with open(path, "rb") as f:
            body = f.read()
        deadline = int((time.time() + 60) * 1000)
        self.send(200, body, {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": f"req-{n}",
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:test",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
        })

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.strip("/").split("/")
        # 2018-06-01/runtime/invocation/<id>/response|error, or init/error
        if len(parts) == 5 and parts[2] == "invocation" and parts[4] in ("response", "error"):
            n = parts[3].removeprefix("req-")
            kind = "response" if parts[4] == "response" else "error"
            tmp = os.path.join(self.server.events_dir, f"{n}.{kind}.json.tmp")
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, os.path.join(self.server.events_dir, f"{n}.{kind}.json"))
            self.send(202, b"{}", {"Content-Type": "application/json"})
        elif parts[-2:] == ["init", "error"]:
            with open(os.path.join(self.server.events_dir, "init.error.json"), "wb") as f:
                f.write(body)
            self.send(202, b"{}", {"Content-Type": "application/json"})
        else:
            self.send(404)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--events-dir", required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.events_dir = args.events_dir
    print(f"lambda runtime emulator on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
