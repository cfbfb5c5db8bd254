#!/usr/bin/env python3
"""Reads a mandala pack without mandala (docs/FORMAT.md §12): checks the index's name and
hash, the pack's hash, and re-derives every entry's id from its content.

    pip install blake3 zstandard cbor2
    python3 docs/tools/read_pack.py STORE/packs/pack-<ID>.idx
"""
import struct
import sys

import blake3
import cbor2
import zstandard

KEYS = {1: "mandala v1 value", 2: "mandala v1 call record"}


def main(idx_path):
    idx = open(idx_path, "rb").read()
    pack = open(idx_path[: -len(".idx")] + ".pack", "rb").read()
    body, trailer = idx[:-32], idx[-32:]
    assert blake3.blake3(body).digest() == trailer, "index hash"
    assert idx_path.endswith("pack-" + trailer.hex() + ".idx"), "pack name"
    assert idx[:12] == b"mandala-idx\n" and struct.unpack("<I", idx[12:16])[0] == 1
    assert idx[16:48] == blake3.blake3(pack).digest(), "pack hash"
    assert pack[:12] == b"mandala-pack"
    n_values, n_calls = struct.unpack("<QQ", idx[48:64])
    rows = [(1, idx[64 + i * 44 : 64 + (i + 1) * 44]) for i in range(n_values)]
    base = 64 + n_values * 44
    rows += [(2, idx[base + i * 108 : base + (i + 1) * 108]) for i in range(n_calls)]
    dctx = zstandard.ZstdDecompressor()
    for kind, row in rows:
        klen = 32 if kind == 1 else 96
        offset, length = struct.unpack("<QI", row[klen:])
        head = 1 + klen + 4
        assert pack[offset] == kind and pack[offset + 1 : offset + 1 + klen] == row[:klen]
        assert struct.unpack("<I", pack[offset + head - 4 : offset + head])[0] == length
        content = dctx.decompress(pack[offset + head : offset + head + length])
        want = row[:32] if kind == 1 else row[64:96]  # a value's cid; a record's RID
        got = blake3.blake3(content, derive_key_context=KEYS[kind]).digest()
        assert got == want, f"entry at offset {offset}"
        what = "value " if kind == 1 else "call  "
        print(what + want.hex()[:16], "at", offset, cbor2.loads(content))
    print(f"ok: {n_values} values and {n_calls} calls re-derive their ids")


if __name__ == "__main__":
    main(sys.argv[1])
