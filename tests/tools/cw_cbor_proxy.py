#!/usr/bin/env python3
"""CloudWatch protocol translator for tests: Smithy RPC-v2 CBOR (what the Rust SDK speaks)
to awsJson 1.0 (what moto serves), and back.

    cw_cbor_proxy.py --listen-port P --upstream http://127.0.0.1:MOTO [--throttle-first N]

POST /service/GraniteServiceVersion20100801/operation/<Op> with a CBOR body becomes
POST / with `X-Amz-Target: GraniteServiceVersion20100801.<Op>` and a JSON body; timestamps
(CBOR tag 1, epoch seconds) become JSON epoch numbers, and the reverse on the way back.
Errors keep their status and become CBOR `{"__type", "message"}` bodies. Every other request
(STS GetCallerIdentity, …) is forwarded unchanged. `--throttle-first N` answers the first N
GetMetricData calls with a CloudWatch `Throttling` error, as AWS does under load.

Listens on 127.0.0.1 only and talks only to the loopback upstream. GET /healthz answers 200.
"""

import argparse
import datetime as dt
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cbor2

PREFIX = "/service/GraniteServiceVersion20100801/operation/"
TARGET = "GraniteServiceVersion20100801."
# Output members that are timestamps in the CloudWatch model (responses of the operations
# the importer and the tests use, plus the alarm/dashboards ones for completeness).
TIMESTAMP_KEYS = {
    "Timestamps", "Timestamp", "StartTime", "EndTime", "LastModified",
    "StateUpdatedTimestamp", "AlarmConfigurationUpdatedTimestamp",
    "StateTransitionedTimestamp", "LastUpdateDate", "CreationDate",
}
# Output members that are doubles: JSON may carry them as integers, CBOR must not.
DOUBLE_KEYS = {"Values", "Value", "Sum", "Average", "Minimum", "Maximum", "SampleCount", "Threshold"}

STATE = {"throttle_left": 0, "calls": {}}
LOCK = threading.Lock()
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def to_json(v):
    """CBOR-decoded request value -> JSON-ready value (datetimes -> epoch seconds)."""
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return v.timestamp()
    if isinstance(v, cbor2.CBORTag) and v.tag == 1:
        return float(v.value)
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        import base64
        return base64.b64encode(v).decode()
    return v


def epoch(x):
    if isinstance(x, str):
        return dt.datetime.fromisoformat(x.replace("Z", "+00:00")).timestamp()
    return float(x)


def to_cbor(v, key=None):
    """JSON response value -> CBOR-ready value (timestamp members -> tag 1)."""
    if isinstance(v, dict):
        return {k: to_cbor(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [to_cbor(x, key) for x in v]
    if key in TIMESTAMP_KEYS and isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return cbor2.CBORTag(1, epoch(v))
    if key in DOUBLE_KEYS and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("proxy: " + (fmt % args) + "\n")

    def reply(self, status, body, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def cbor_reply(self, status, obj):
        self.reply(status, cbor2.dumps(obj), {
            "Content-Type": "application/cbor",
            "smithy-protocol": "rpc-v2-cbor",
        })

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, b"ok\n", {"Content-Type": "text/plain"})
        else:
            self.forward_raw()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self.path.startswith(PREFIX):
            self.forward_raw(body)
            return
        op = self.path[len(PREFIX):]
        with LOCK:
            STATE["calls"][op] = STATE["calls"].get(op, 0) + 1
            throttle = op == "GetMetricData" and STATE["throttle_left"] > 0
            if throttle:
                STATE["throttle_left"] -= 1
        if throttle:
            self.cbor_reply(400, {"__type": "Throttling", "message": "Rate exceeded"})
            return
        request = to_json(cbor2.loads(body)) if body else {}
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": TARGET + op,
        }
        for h in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if self.headers.get(h):
                headers[h] = self.headers[h]
        req = urllib.request.Request(
            self.server.upstream + "/", data=json.dumps(request).encode(), headers=headers, method="POST"
        )
        try:
            with OPENER.open(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"__type": "InternalFailure", "message": raw.decode(errors="replace")[:500]}
        if status >= 300:
            err_type = str(answer.get("__type", "InternalFailure")).split("#")[-1]
            message = answer.get("message") or answer.get("Message") or ""
            self.cbor_reply(status, {"__type": err_type, "message": message})
            return
        self.cbor_reply(status, to_cbor(answer))

    def forward_raw(self, body=None):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        req = urllib.request.Request(
            self.server.upstream + self.path, data=body, headers=headers, method=self.command
        )
        try:
            with OPENER.open(req, timeout=30) as resp:
                status, raw, rh = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, raw, rh = e.code, e.read(), e.headers
        keep = {k: v for k, v in rh.items() if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date")}
        self.reply(status, raw, keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--throttle-first", type=int, default=0)
    args = ap.parse_args()
    host = urllib.parse.urlparse(args.upstream).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing non-loopback upstream {args.upstream}")
    STATE["throttle_left"] = args.throttle_first
    server = ThreadingHTTPServer(("127.0.0.1", args.listen_port), Handler)
    server.upstream = args.upstream.rstrip("/")
    print(f"cw_cbor_proxy listening on 127.0.0.1:{args.listen_port} -> {server.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
