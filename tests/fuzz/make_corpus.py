#!/usr/bin/env python3
"""Regenerates the seed corpus in tests/fuzz/corpus/ from the golden vectors.

    python3 tests/fuzz/make_corpus.py

corpus/seri/     skynet.pack payloads: every seri.jsonl / seri_reject.jsonl entry
                 that has bytes, plus the distinct request/response payloads.
corpus/cluster/  frame streams, each behind a control prefix (layout in
                 cluster_target.cpp) that picks how the stream is cut into feed()s:
                 every request/response/behaviour/streams entry that has bytes, and
                 two long streams made by concatenating all requests / all responses.

Entries whose hex is null (large vectors kept in interop/bin/) are skipped; the
replay test runs those directly. Files named found-* (inputs kept from fuzzing
runs) are left alone; every other file in the two folders is rewritten.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEROP = HERE.parent / "data" / "interop"
CORPUS = HERE / "corpus"
KEEP_PREFIX = "found-"

# Control prefixes for cluster inputs, used in turn. Byte 0: bits 0-2 = number of
# chunk-size bytes, bit 3 = sizes x256, bit 4 = tight limits, bit 5 = empty feeds.
CHUNKINGS = [
    bytes([0x00]),                     # whole stream at once
    bytes([0x01, 0x00]),               # 1-byte feeds
    bytes([0x02, 0x02, 0x06]),         # 3, 7, 3, 7, ...
    bytes([0x13, 0x04, 0x00, 0x1F]),   # 5, 1, 32 ... with tight limits
    bytes([0x20]),                     # empty feed, then everything
    bytes([0x09, 0x00]),               # 256-byte feeds
]


def load(name):
    with open(INTEROP / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def reset(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith(KEEP_PREFIX):
            p.unlink()


def write(folder, name, data, seen):
    digest = hashlib.sha1(data).digest()
    if digest in seen:
        return 0
    seen.add(digest)
    (folder / safe(name)).write_bytes(data)
    return len(data)


def main():
    seri_dir = CORPUS / "seri"
    cluster_dir = CORPUS / "cluster"
    reset(seri_dir)
    reset(cluster_dir)

    total = 0
    seen = set()
    for file in ("seri.jsonl", "seri_reject.jsonl"):
        for e in load(file):
            if e.get("hex") is None:
                continue
            total += write(seri_dir, f"{Path(file).stem}-{e['name']}", bytes.fromhex(e["hex"]), seen)
    for file in ("requests.jsonl", "responses.jsonl"):
        for e in load(file):
            payload = e.get("meaning", {}).get("payload_hex")
            if payload:
                total += write(seri_dir, f"payload-{Path(file).stem}-{e['name']}", bytes.fromhex(payload), seen)

    seen = set()
    i = 0
    streams = {}
    for file in ("requests.jsonl", "responses.jsonl", "behaviour.jsonl", "streams.jsonl"):
        for e in load(file):
            if e.get("hex") is None:
                continue
            frames = bytes.fromhex(e["hex"])
            streams.setdefault(file, bytearray()).extend(frames)
            prefix = CHUNKINGS[i % len(CHUNKINGS)]
            i += 1
            total += write(cluster_dir, f"{Path(file).stem}-{e['name']}", prefix + frames, seen)
    for file in ("requests.jsonl", "responses.jsonl"):
        for j, prefix in enumerate((CHUNKINGS[0], CHUNKINGS[2], CHUNKINGS[3])):
            total += write(cluster_dir, f"all-{Path(file).stem}-{j}", prefix + bytes(streams[file]), seen)

    count = sum(1 for d in (seri_dir, cluster_dir) for p in d.iterdir() if p.is_file())
    print(f"wrote {total} bytes of seeds; {count} files in the corpus", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
