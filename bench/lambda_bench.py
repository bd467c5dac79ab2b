#!/usr/bin/env python3
"""Lambda function benchmark: zipped size, init time and warm handling time.

    cargo lambda build --release -p ember-ingest -p ember-query ...   # target/lambda/*/bootstrap
    bench/lambda_bench.py [--lambda-dir target/lambda] [--cold-starts 5] [--events 20]

For every function built under --lambda-dir:
- size: the `bootstrap` binary, and zipped (deflate, level 9) as Lambda takes it;
- init: process start -> the first `GET /2018-06-01/runtime/invocation/next` on an
  emulated Lambda Runtime API on 127.0.0.1 (what Lambda reports as Init Duration, minus
  the sandbox's own start), median over --cold-starts fresh processes;
- first event and warm events: time from handing an event out to the function's response,
  for the first event of a process and the median of the following ones.

Events: the query function gets `tests/events/apigw-v2-query.json` (`1+1`), the ingest
function `tests/events/apigw-v2-remote-write.json` (a real k6 remote-write body, base64),
the scheduled functions an EventBridge Scheduler event whose scheduled time is 59.5 s ago,
so the window holds exactly one pass. Storage: the embedded store in a temporary
directory (no AWS), with no configuration (no scrape jobs, rules or CloudWatch jobs): the
figures are the functions' own overhead, not of work a configuration adds.
"""

import argparse
import datetime
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = os.path.join(ROOT, "tests", "events")


class Emulator:
    """The Runtime API: hands out queued events, records when `next` is first asked for
    and when each response arrives."""

    def __init__(self):
        self.events = queue.Queue()
        self.first_next = None
        self.handed = {}
        self.done = {}
        self.cond = threading.Condition()
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle + delayed ACK
            # add ~40 ms to every response the function reads.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.reply(404)
                with emu.cond:
                    if emu.first_next is None:
                        emu.first_next = time.perf_counter()
                        emu.cond.notify_all()
                req_id, body = emu.events.get()
                with emu.cond:
                    emu.handed[req_id] = time.perf_counter()
                deadline = int(time.time() * 1000) + 60_000
                self.reply(200, body, {
                    "Lambda-Runtime-Aws-Request-Id": req_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        "arn:aws:lambda:us-east-1:123456789012:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    "Content-Type": "application/json",
                })

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                parts = self.path.split("/")
                if "invocation" in parts and parts[-1] in ("response", "error"):
                    req_id = parts[-2]
                    with emu.cond:
                        emu.done[req_id] = (time.perf_counter(), parts[-1], body)
                        emu.cond.notify_all()
                    return self.reply(202)
                if self.path.endswith("/init/error"):
                    with emu.cond:
                        emu.done["init"] = (time.perf_counter(), "init-error", body)
                        emu.cond.notify_all()
                    return self.reply(202)
                self.reply(404)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # the function process is killed mid-request at the end of a run

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred, timeout=120):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise TimeoutError("function did not answer in time")


def scheduler_event():
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=59.5)
    return json.dumps({
        "source": "aws.scheduler",
        "time": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "schedule": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/bench",
    }).encode()


def event_for(name):
    if name == "ember-query":
        return lambda: open(os.path.join(EVENTS, "apigw-v2-query.json"), "rb").read()
    if name == "ember-ingest":
        return lambda: open(os.path.join(EVENTS, "apigw-v2-remote-write.json"), "rb").read()
    return scheduler_event


def run_process(binary, data_dir, make_event, events):
    emu = Emulator()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{emu.port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "EMBER_STORAGE": "local",
        "EMBER_DATA_DIR": data_dir,
        "RUST_LOG": "warn",
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        emu.wait(lambda: emu.first_next is not None or "init" in emu.done)
        if "init" in emu.done:
            raise RuntimeError(f"init error: {emu.done['init'][2][:300]!r}")
        init = emu.first_next - t0
        times = []
        for i in range(events):
            req_id = f"req-{i}"
            emu.events.put((req_id, make_event()))
            emu.wait(lambda: req_id in emu.done)
            at, kind, body = emu.done[req_id]
            if kind != "response":
                raise RuntimeError(f"event {i}: {kind}: {body[:300]!r}")
            times.append(at - emu.handed[req_id])
        return init, times, body
    finally:
        proc.kill()
        proc.wait()
        emu.server.shutdown()


def check_query_answer(raw):
    """The query function's API Gateway response must carry the scalar 2 for `1+1`."""
    resp = json.loads(raw)
    body = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        import base64
        body = base64.b64decode(body).decode()
    data = json.loads(body)
    if resp.get("statusCode") != 200 or data["data"]["result"][1] != "2":
        raise RuntimeError(f"query answered {raw[:300]!r}, expected the scalar 2")


def zipped_size(path):
    with tempfile.TemporaryDirectory() as d:
        z = os.path.join(d, "f.zip")
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.write(path, "bootstrap")
        return os.path.getsize(z)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lambda-dir", default=os.path.join(ROOT, "target", "lambda"))
    ap.add_argument("--cold-starts", type=int, default=5)
    ap.add_argument("--events", type=int, default=20)
    args = ap.parse_args()
    names = sorted(n for n in os.listdir(args.lambda_dir)
                   if os.path.isfile(os.path.join(args.lambda_dir, n, "bootstrap")))
    if not names:
        sys.exit(f"no */bootstrap under {args.lambda_dir}: run cargo lambda build --release first")
    print("| function | binary MB | zipped MB | init ms (median of "
          f"{args.cold_starts}) | first event ms | warm event ms (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        binary = os.path.join(args.lambda_dir, name, "bootstrap")
        data_dir = tempfile.mkdtemp(prefix="ember-lambda-bench-")
        try:
            inits, firsts, warms = [], [], []
            for i in range(args.cold_starts):
                events = args.events if i == 0 else 1
                init, times, last = run_process(binary, data_dir, event_for(name), events)
                inits.append(init)
                firsts.append(times[0])
                warms.extend(times[1:])
            if name == "ember-query":
                check_query_answer(last)
            print(f"| {name} | {os.path.getsize(binary) / 1e6:.2f} | "
                  f"{zipped_size(binary) / 1e6:.2f} | {statistics.median(inits) * 1e3:.1f} | "
                  f"{statistics.median(firsts) * 1e3:.1f} | "
                  f"{statistics.median(warms) * 1e3 if warms else float('nan'):.2f} |")
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
