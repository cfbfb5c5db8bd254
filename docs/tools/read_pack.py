#!/usr/bin/env python3
"""Reads a mandala pack of version 1 or 2 without mandala (docs/FORMAT.md §11): checks the
index's name and hash, the pack's hash, and re-derives every entry's id from its content (a
compact record of version 2 expanded to the record it stands for); then re-derives the
collections its structural calls build and take apart (§6c): each list's or dict's shape from
its elements, and each element's history from its collection.

    pip install blake3 zstandard cbor2
    python3 docs/tools/read_pack.py STORE/packs/pack-<ID>.idx
"""
import struct
import sys

import blake3
import cbor2
import zstandard

KEYS = {1: "mandala v1 value", 2: "mandala v1 call record"}
LIST_TAG, DICT_TAG = 0x6D616E6C, 0x6D616E64


def h(context, data):
    return blake3.blake3(data, derive_key_context=context).digest()


def canonical(v):
    return cbor2.dumps(v, canonical=True)


def call_hid(record):
    hids = {s["name"]: s["hid"] for s in record["inputs"]}
    return h("mandala v1 call hid", canonical([record["op"], hids, record["semver"]]))


def output_hid(call, name):
    return h("mandala v1 output hid", canonical([call, name]))


def check_collections(values, records):
    """Re-derives shapes and element histories; returns how many collections it checked."""
    checked = 0
    for rec in records:
        op, inputs, out = rec["op"], rec["inputs"], rec["outputs"][0] if rec["outputs"] else None
        if op in ("__make_list__", "__make_dict__"):
            if op == "__make_list__":
                elts = sorted(inputs, key=lambda s: int(s["name"][len("elts_"):]))
                shape = cbor2.CBORTag(LIST_TAG, [s["cid"] for s in elts])
            else:
                shape = cbor2.CBORTag(DICT_TAG, {s["name"]: s["cid"] for s in inputs})
            assert h(KEYS[1], canonical(shape)) == out["cid"], f"{op} output cid"
            assert output_hid(call_hid(rec), out["name"]) == out["hid"], f"{op} output hid"
            checked += 1
        elif op in ("__list_getitem__", "__dict_getitem__"):
            by = {s["name"]: s for s in inputs}
            coll = by["list"] if op == "__list_getitem__" else by["dict"]
            key = by["index"] if op == "__list_getitem__" else by["key"]
            assert h("mandala v1 source hid", key["cid"]) == key["hid"], "key is a source value"
            assert output_hid(call_hid(rec), "item") == out["hid"], f"{op} element hid"
            if coll["cid"] in values and key["cid"] in values:
                shape = cbor2.loads(values[coll["cid"]])
                k = cbor2.loads(values[key["cid"]])
                assert shape.value[k] == out["cid"], f"{op}: element {k!r} of its collection"
                checked += 1
    return checked


UNVERSIONED = h("mandala v1 unversioned", b"")


def expand(body, commits):
    """A compact record (pack version 2, docs/FORMAT.md §11.9) as the record it stands for:
    [op, semver or null, inputs, outputs] (+ [deps]) (+ [git index]); a slot is [name, cid]
    when its hid is the derived one, else [name, cid, hid]."""
    arr = cbor2.loads(body)
    op, semver, ins, outs = arr[:4]
    rec = {"op": op, "semver": UNVERSIONED if semver is None else semver}
    rec["inputs"] = [
        {"name": s[0], "cid": s[1], "hid": s[2] if len(s) == 3 else h("mandala v1 source hid", s[1])}
        for s in ins
    ]
    hid = call_hid(rec)
    rec["outputs"] = [
        {"name": s[0], "cid": s[1], "hid": s[2] if len(s) == 3 else output_hid(hid, s[0])}
        for s in outs
    ]
    if len(arr) >= 5 and arr[4]:
        rec["deps"] = arr[4]
    if len(arr) == 6:
        rec["git"] = commits[arr[5]]
    return rec


def main(idx_path):
    idx = open(idx_path, "rb").read()
    pack = open(idx_path[: -len(".idx")] + ".pack", "rb").read()
    body, trailer = idx[:-32], idx[-32:]
    assert blake3.blake3(body).digest() == trailer, "index hash"
    assert idx_path.endswith("pack-" + trailer.hex() + ".idx"), "pack name"
    version = struct.unpack("<I", idx[12:16])[0]
    assert idx[:12] == b"mandala-idx\n" and version in (1, 2)
    assert idx[16:48] == blake3.blake3(pack).digest(), "pack hash"
    assert pack[:16] == b"mandala-pack" + struct.pack("<I", version)
    n_values, n_calls = struct.unpack("<QQ", idx[48:64])
    dctx = zstandard.ZstdDecompressor()
    if version == 1:
        # Rows: the whole id, offset, length; entries: kind, id, length, a zstd frame of the
        # canonical CBOR.
        rows = [(1, idx[64 + i * 44 : 64 + (i + 1) * 44]) for i in range(n_values)]
        base = 64 + n_values * 44
        rows += [(2, idx[base + i * 108 : base + (i + 1) * 108]) for i in range(n_calls)]
        commits = []
    else:
        # Rows: the id's first 8 bytes, offset; entries: kind (| 0x80 for a zstd frame), id,
        # length, content (a value's CBOR, a record's compact form, a commit's text).
        (n_commits,) = struct.unpack("<Q", idx[64:72])
        rows = [(1 if i < n_values else 2, idx[72 + i * 16 : 72 + (i + 1) * 16])
                for i in range(n_values + n_calls)]
        base = 72 + (n_values + n_calls) * 16
        commits = []
        for i in range(n_commits):
            (offset,) = struct.unpack("<Q", idx[base + i * 8 : base + (i + 1) * 8])
            kind = pack[offset]
            assert kind & 0x7F == 3, f"commit {i}"
            (length,) = struct.unpack("<I", pack[offset + 1 : offset + 5])
            text = pack[offset + 5 : offset + 5 + length]
            commits.append((dctx.decompress(text) if kind & 0x80 else text).decode())
    values, records = {}, []
    for kind, row in rows:
        klen = 32 if kind == 1 else 96
        head = 1 + klen + 4
        if version == 1:
            offset, length = struct.unpack("<QI", row[klen:])
            assert pack[offset] == kind and pack[offset + 1 : offset + 1 + klen] == row[:klen]
            assert struct.unpack("<I", pack[offset + head - 4 : offset + head])[0] == length
            ids = row[:klen]
            content = dctx.decompress(pack[offset + head : offset + head + length])
        else:
            (offset,) = struct.unpack("<Q", row[8:])
            assert pack[offset] & 0x7F == kind, f"entry at offset {offset}: kind"
            ids = pack[offset + 1 : offset + 1 + klen]
            assert ids[:8] == row[:8], f"entry at offset {offset}: its row's id prefix"
            (length,) = struct.unpack("<I", pack[offset + head - 4 : offset + head])
            content = pack[offset + head : offset + head + length]
            if pack[offset] & 0x80:
                content = dctx.decompress(content)
            if kind == 2:
                content = canonical(expand(content, commits))
        want = ids[:32] if kind == 1 else ids[64:96]  # a value's cid; a record's RID
        got = blake3.blake3(content, derive_key_context=KEYS[kind]).digest()
        assert got == want, f"entry at offset {offset}"
        what = "value " if kind == 1 else "call  "
        print(what + want.hex()[:16], "at", offset, cbor2.loads(content))
        if kind == 1:
            values[want] = content
        else:
            records.append(cbor2.loads(content))
    print(f"ok: {n_values} values and {n_calls} calls re-derive their ids")
    n = check_collections(values, records)
    if n:
        print(f"ok: {n} collections and elements re-derive their shapes and histories")


if __name__ == "__main__":
    main(sys.argv[1])
