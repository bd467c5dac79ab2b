#!/usr/bin/env python3
"""Writes the API Gateway HTTP API (payload v2) fixtures of this directory.

apigw-v2-remote-write.json carries the k6 remote-write body captured in
/work/shared/reference/samples (snappy-compressed protobuf), base64-encoded with
isBase64Encoded=true, exactly as API Gateway hands binary bodies to Lambda.
Usage: python3 make_apigw_event.py [path-to-body.bin]
"""
import base64
import json
import os
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))


def event(method, path, query, headers, body=None):
    ev = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": dict(headers, host="abc123.execute-api.us-east-1.amazonaws.com"),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": "ember-fixture",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "22/Nov/2026:18:00:00 +0000",
            "timeEpoch": 1795464000000,
        },
        "isBase64Encoded": body is not None,
    }
    if query:
        ev["queryStringParameters"] = dict(urllib.parse.parse_qsl(query))
    if body is not None:
        ev["body"] = base64.b64encode(body).decode("ascii")
        ev["headers"]["content-length"] = str(len(body))
    return ev


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/samples/k6-remote-write-sample.bin"
    body = open(src, "rb").read()
    write = event(
        "POST",
        "/api/v1/write",
        "",
        {
            "content-type": "application/x-protobuf",
            "content-encoding": "snappy",
            "x-prometheus-remote-write-version": "0.1.0",
            "user-agent": "k6-prometheus-rw-output",
        },
        body,
    )
    query = event("GET", "/api/v1/query", "query=1%2B1", {"user-agent": "Grafana/11.0.0"})
    for name, ev in [("apigw-v2-remote-write.json", write), ("apigw-v2-query.json", query)]:
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(ev, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
