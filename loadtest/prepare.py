#!/usr/bin/env python3
"""Loads a data set for a load test through the public API (stdlib only).

Cards 7100000000000 + i for i < --cards are created New; the first --active
of them are issued, bound to a contact of their own and activated, so that
purchases can be confirmed on them.
"""
import argparse
import base64
import http.client
import json
import sys

BASE = 7_100_000_000_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--cards", type=int, default=100_000)
    ap.add_argument("--active", type=int, default=1_000)
    args = ap.parse_args()

    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)

    def call(method, path, login, body=None):
        auth = base64.b64encode(f"{login}:{login}-demo".encode()).decode()
        headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = json.loads(resp.read())
        if not data.get("Status"):
            sys.exit(f"{method} {path}: {resp.status} {data}")
        return data

    chunk = 20_000
    created = existing = 0
    for start in range(0, args.cards, chunk):
        cards = [{"Number": str(BASE + i), "CategoryCode": 0, "TypeCode": 0}
                 for i in range(start, min(start + chunk, args.cards))]
        r = call("POST", "/api/admin/cards", "admin", cards)
        created += r["Created"]
        existing += r["Existing"]
    for i in range(args.active):
        number = str(BASE + i)
        mobile = f"7990{i:07d}"
        call("GET", f"/api/card/issue?Number={number}", "pos")
        call("POST", "/api/contact", "pos",
             {"Code": f"LT-{i}", "Name": "Load Test", "BirthDate": "1990-01-01", "MobileNumber": mobile})
        call("POST", "/api/card/bindto", "pos", {"Number": number, "MobileNumber": mobile})
        call("GET", f"/api/card/active?Number={number}", "pos")
    print(f"cards: {created} created, {existing} existing; {args.active} active")


if __name__ == "__main__":
    main()
