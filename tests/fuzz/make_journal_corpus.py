#!/usr/bin/env python3
"""Writes the seeds of journal_fuzz (tests/fuzz/corpus/journal): entity journal files as
journal_target.cpp reads them (a 4096-byte header page, then ring bytes), built from the
layout in services/entity/journal_format.hpp with the entity snapshots of corpus/entity
as delta payloads. Run from the repository root: python3 tests/fuzz/make_journal_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "journal")


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def superblock(counter, epoch, ring_size, head, head_seq, slot=255, pages=0, nbytes=0, store=b"s", typ=b"fuzz.entity"):
    b = b"CSKS" + struct.pack("<HH", 1, 0)
    b += struct.pack("<QQQQQ", counter, epoch, ring_size, head, head_seq)
    b += bytes([slot, 1]) + b"\0" * 6
    b += struct.pack("<QQqqQ", pages, nbytes, 1000, 1700000000000, 1 if slot != 255 else 0)
    b += bytes(range(1, 17))
    b += bytes([len(store)]) + store + bytes([len(typ)]) + typ
    return b + struct.pack("<I", crc32c(b))


def page(*copies, hint=(0, 0, 0, 0)):
    p = bytearray(4096)
    for at, sb in copies:
        p[at:at + len(sb)] = sb
    p[2048:2080] = struct.pack("<QQQQ", *hint)
    return bytes(p)


def record(seq, epoch, kind, payload=b""):
    body = struct.pack("<QIB3xII", seq, epoch, kind, len(payload), 0) + payload
    r = b"CSKJ" + struct.pack("<I", crc32c(body)) + body
    return r + b"\0" * (-len(r) % 8)


def frame(p):
    return struct.pack("<II", len(p), crc32c(p)) + p


def entity(name):
    with open(os.path.join(HERE, "corpus", "entity", name), "rb") as f:
        return f.read()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if not f.startswith("found-"):
            os.remove(os.path.join(OUT, f))
    delta = entity("delta-string")
    # A chain of three from offset 0: delta, clear, delta.
    ring = record(1, 1, 1, delta) + record(2, 1, 2) + record(3, 1, 1, delta)
    ring += b"\0" * (1024 - len(ring))
    write("chain-3", page((0, superblock(1, 1, 65536, 0, 1)), hint=(1, 4, len(ring), 0)) + ring)
    # The newer copy (1) says the chain starts at the second record.
    first = record(1, 1, 1, delta)
    write("newer-copy", page((0, superblock(1, 1, 65536, 0, 1)), (1024, superblock(2, 1, 65536, len(first), 2))) +
          first + record(2, 1, 1, delta) + b"\0" * 256)
    # A wrap record at the end of a 512-byte ring, the next record at 0, then a stale lap.
    tail = record(7, 2, 1, delta)
    ring = bytearray(512)
    ring[0:len(tail)] = tail
    stale = record(3, 1, 1, delta)
    ring[len(tail):len(tail) + len(stale)] = stale
    ring[448:448 + 32] = record(6, 2, 3)
    ring[384:384 + 64] = record(5, 2, 1, b"x" * 30)
    write("wrap", page((0, superblock(1, 2, 65536, 384, 5))) + bytes(ring))
    # Epochs: a writer of epoch 3 after one of epoch 2; then a record of epoch 1 (ends it).
    ring = record(1, 2, 1, delta) + record(2, 3, 2) + record(3, 1, 1, delta) + b"\0" * 64
    write("epochs", page((0, superblock(4, 3, 65536, 0, 1))) + ring)
    # A torn last record (its payload scribbled on).
    torn = bytearray(record(1, 1, 1, delta) + record(2, 1, 1, delta))
    torn[-20] ^= 0xFF
    write("torn", page((0, superblock(1, 1, 65536, 0, 1)), hint=(1, 3, len(torn), len(torn))) + bytes(torn))
    # The ring read as checkpoint frames: byte 0 of the input (the superblock's 'C', 67)
    # asks for 67 % 16 = 3 pages.
    slot = frame(entity("page-string")) + frame(delta)
    slot += frame(b"f" * (-len(slot) % 8))  # a last page that brings it to a multiple of 8
    write("frames", page((0, superblock(1, 1, 65536, 0, 1, 0, 3, len(slot)))) + slot)
    write("empty-page", b"\0" * 4096)


if __name__ == "__main__":
    main()
