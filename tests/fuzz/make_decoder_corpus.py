#!/usr/bin/env python3
"""Writes the seed corpora of the http, transfer and assembler_state fuzz targets.

    python3 tests/fuzz/make_decoder_corpus.py

corpus/http/             admin endpoint request heads (services/admin/http.hpp): good
                         ones, bare-LF ones, refused ones, an oversized one
corpus/transfer/         byte 0 < 0x80: a transfer message kind, then its body;
                         byte 0 >= 0x80: a record stream (layout in transfer_target.cpp)
corpus/assembler_state/  byte 0: limits, then a request assembler state blob
                         (layout in common/wire/cluster_assembler.cpp)

Files named found-* (inputs kept from fuzzing runs) are left alone; every other file in
the three folders is rewritten.
"""

import struct
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
KEEP_PREFIX = "found-"


def reset(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith(KEEP_PREFIX):
            p.unlink()


def write_all(name, entries):
    folder = CORPUS / name
    reset(folder)
    for fname, data in entries.items():
        (folder / fname).write_bytes(data)


# ---------------------------------------------------------------- http --

def http_seeds():
    return {
        "metrics": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.45\r\nAccept: */*\r\n\r\n",
        "status-query": b"GET /status?pretty=1&x= HTTP/1.0\r\nHost: a\r\n\r\n",
        "pprof": b"GET /debug/pprof/profile?seconds=2 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        "bare-lf": b"GET /metrics HTTP/1.0\n\n",
        "bare-lf-then-crlf": b"GET / HTTP/1.1\n\nX: y\r\n\r\n",
        "pipelined": b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        "partial": b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
        "post-body": b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "http2": b"GET /metrics HTTP/2\r\n\r\n",
        "no-target-slash": b"GET metrics HTTP/1.1\r\n\r\n",
        "no-colon": b"GET / HTTP/1.1\r\nnocolon\r\n\r\n",
        "folded": b"GET / HTTP/1.1\r\nA: b\r\n  c\r\n\r\n",
        "spaces": b"  GET  /  HTTP/1.1 \t\r\n\r\n",
        "tabs": b"\tGET /\tx HTTP/1.1\r\n\r\n",
        "no-request-line": b"GET / HTTP/1.1",
        "oversized": b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 8200 + b"\r\n\r\n",
        "at-limit": b"GET / HTTP/1.1\r\nX: " + b"b" * (8192 - 23) + b"\r\n\r\n",
    }


# ------------------------------------------------------------ transfer --

def s(b):  # cereal string / byte string: u64 length, then the bytes
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<Q", len(b)) + b


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


BODIES = {
    "offer": (1, u32(2) + u64(2) + s("entity.counter") + s("counter") + s(b"\x01\x02hdr")
              + s("entity.users") + s("users") + s(b"") + u64(1) + s("kv")),
    "offer-empty": (1, u32(7) + u64(0) + u64(0)),
    "accept": (2, b""),
    "refuse": (3, s("store entity.counter has type counter2 here")),
    "page": (4, s("entity.counter") + s(bytes(range(40)))),
    "applied": (5, s("entity.counter") + u64(12) + u64(3)),
    "commit": (6, b""),
    "conn": (7, s("cluster") + s("127.0.0.1:51234") + s(b"\x00\x05\x80\x01@a") + s(b"CSRA\x01\x00")),
    "done": (8, u64(3)),
    "serving": (9, b""),
    "abort": (10, s("timeout")),
    "offer-lying-count": (1, u32(1) + u64(1 << 40)),
    "page-lying-length": (4, s("x") + u64(1000) + b"abc"),
    "unknown-kind": (11, b""),
    "trailing": (8, u64(3) + b"\x00"),
}


def record(kind, part, more=False, flags=None, zero=0, length=None):
    f = (1 if more else 0) if flags is None else flags
    n = len(part) if length is None else length
    return b"CSKX" + struct.pack("<HBBI", kind, f, zero, n) + part


def stream(limit, records):
    out = bytes([0x80 | limit])
    for r in records:
        out += struct.pack("<H", len(r)) + r
    return out


def transfer_seeds():
    out = {}
    for name, (kind, body) in BODIES.items():
        out["body-" + name] = bytes([kind]) + body
    offer_kind, offer = BODIES["offer"]
    conn_kind, conn = BODIES["conn"]
    out["stream-messages"] = stream(0x7F, [record(k, b) for k, b in
                                           (BODIES["accept"], BODIES["page"], BODIES["applied"], BODIES["done"])])
    out["stream-split"] = stream(0x7F, [record(offer_kind, offer[:10], more=True),
                                        record(offer_kind, offer[10:50], more=True),
                                        record(offer_kind, offer[50:])] + [record(*BODIES["serving"])])
    out["stream-limit"] = stream(4, [record(offer_kind, offer[:40], more=True), record(offer_kind, offer[40:]),
                                     record(*BODIES["commit"])])
    out["stream-conn-without-fd"] = stream(0x7F, [record(conn_kind, conn), record(*BODIES["done"])])
    out["stream-kind-change"] = stream(0x7F, [record(4, b"\x01", more=True), record(5, b"\x02"),
                                              record(*BODIES["abort"])])
    out["stream-bad-headers"] = stream(0x7F, [b"CSKY" + bytes(8), record(1, b"", flags=2), record(1, b"", zero=1),
                                              record(8, b"ab", length=3), record(0, b""), record(200, b""),
                                              b"CSK", record(*BODIES["accept"])])
    out["stream-empty-record"] = stream(0x7F, [record(*BODIES["accept"]), b"", record(*BODIES["commit"])])
    out["stream-truncated"] = stream(0x7F, [record(offer_kind, offer[:20], more=True)])
    return out


# ----------------------------------------------------- assembler_state --

def b32(b):
    return u32(len(b)) + b


def state(has_trace, tag, requests):
    out = b"CSRA\x01" + bytes([has_trace]) + b32(tag) + u32(len(requests))
    for (session, flags, address, name, ptag, total, received, data) in requests:
        out += u32(session) + bytes([flags]) + u32(address) + b32(name) + b32(ptag)
        out += u64(total) + u64(received) + u64(len(data)) + data
    return out


def assembler_seeds():
    req = (8, 32, 0, b"@echo", b"", 100, 3, b"abc")
    push = (9, 1, 7, b"", b"tag", 4, 4, b"wxyz")
    traced = (12, 8 | 32, 0, b".svc", b"t1", 65, 1, b"z")
    discarded = (10, 16, 5, b"", b"", 1 << 30, 1000, b"")
    orphan = (11, 2 | 16, 0, b"", b"", 0, 50, b"")
    spoiled = (13, 4 | 16 | 32, 0, b"@x", b"", 10, 20, b"")
    huge = (14, 0, 3, b"", b"", 70 << 20, 2, b"ab")
    out = {
        "empty": state(0, b"", []),
        "trace-waiting": state(1, b"trace-tag-1", []),
        "one": state(0, b"", [req]),
        "all-kinds": state(1, b"tt", [req, push, discarded, orphan, traced, spoiled]),
        "unsorted": state(0, b"", [push, req]),
        "duplicate": state(0, b"", [req, req]),
        "over-limit": state(0, b"", [huge]),
        "bad-version": b"CSRA\x02" + state(0, b"", [])[5:],
        "bad-flags": state(0, b"", [(8, 64, 0, b"", b"", 1, 0, b"")]),
        "not-discarded-orphan": state(0, b"", [(8, 2, 0, b"", b"", 1, 0, b"")]),
        "received-over-total": state(0, b"", [(8, 0, 0, b"", b"", 1, 2, b"ab")]),
        "long-name": state(0, b"", [(8, 32, 0, b"n" * 256, b"", 1, 0, b"")]),
        "trailing": state(0, b"", []) + b"\x00",
        "lying-length": state(0, b"", [])[:6] + u32(1000) + b"abc",
    }
    seeds = {}
    for name, blob in out.items():
        seeds[name] = b"\x00" + blob
    seeds["limit-1000-all-kinds"] = b"\x01" + out["all-kinds"]
    seeds["pending-2-all-kinds"] = b"\x02" + out["all-kinds"]
    seeds["unlimited-over-limit"] = b"\x03" + out["over-limit"]
    return seeds


def main():
    write_all("http", http_seeds())
    write_all("transfer", transfer_seeds())
    write_all("assembler_state", assembler_seeds())


if __name__ == "__main__":
    main()
