#!/usr/bin/env python3
"""Weighs the calls of a format-2 pack (version 1) as the store-format-3 proposal would store
them (docs/FORMAT3.md; entries without names, which format 3 as built keeps): prints bytes per
call now and under the proposal, item by item, from the pack's own records and values
(nothing is written).

    pip install blake3 zstandard cbor2
    python3 docs/tools/format3_budget.py STORE/packs/pack-<ID>.idx
"""
import os
import struct
import sys

import blake3
import cbor2
import zstandard


def h(context, data):
    return blake3.blake3(data, derive_key_context=context).digest()


def canonical(v):
    return cbor2.dumps(v, canonical=True)


def varint_len(n):
    """Bytes of an unsigned LEB128 varint."""
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def call_hid(rec):
    hids = {s["name"]: s["hid"] for s in rec["inputs"]}
    return h("mandala v1 call hid", canonical([rec["op"], hids, rec["semver"]]))


UNVERSIONED = h("mandala v1 unversioned", b"")


def compact_record(rec, git_index):
    """The compact record as store-core encodes it (store-core/src/format/record/compact.rs):
    a CBOR array in a fixed order, no key names; semver null when unversioned; a slot is
    [name, cid] when its hid is the derived one (an input's source hid, an output's hid from
    the call hid and its name), else [name, cid, hid]; the git commit is an index into the
    pack's table of commits."""
    hid = call_hid(rec)

    def slot(s, derived):
        return [s["name"], s["cid"]] + ([] if derived == s["hid"] else [s["hid"]])

    inputs = [slot(s, h("mandala v1 source hid", s["cid"])) for s in rec["inputs"]]
    outputs = [slot(s, h("mandala v1 output hid", canonical([hid, s["name"]])))
               for s in rec["outputs"]]
    semver = None if rec["semver"] == UNVERSIONED else rec["semver"]
    body = [rec["op"], semver, inputs, outputs]
    if rec.get("deps") or git_index is not None:
        body.append(rec.get("deps") or {})
    if git_index is not None:
        body.append(git_index)
    return canonical(body)


def main(idx_path):
    idx = open(idx_path, "rb").read()
    pack = open(idx_path[: -len(".idx")] + ".pack", "rb").read()
    if struct.unpack("<I", idx[12:16])[0] != 1:
        sys.exit(f"{idx_path}: not a pack of version 1 (format 2); a version-2 pack is format 3 already")
    n_values, n_calls = struct.unpack("<QQ", idx[48:64])
    rows = [(1, idx[64 + i * 44 : 64 + (i + 1) * 44]) for i in range(n_values)]
    base = 64 + n_values * 44
    rows += [(2, idx[base + i * 108 : base + (i + 1) * 108]) for i in range(n_calls)]
    dctx = zstandard.ZstdDecompressor()
    now = {"record entries": 0, "value entries": 0, "index rows": 0}
    new = {"record entries": 0, "value entries": 0, "index rows": 0, "git table": 0}
    commits = {}
    records = 0
    for kind, row in rows:
        klen = 32 if kind == 1 else 96
        offset, length = struct.unpack("<QI", row[klen:])
        head = 1 + klen + 4
        content = dctx.decompress(pack[offset + head : offset + head + length])
        if kind == 1:
            now["value entries"] += head + length
            now["index rows"] += 44
            # kind byte, varint length, the CBOR itself (raw: values this small do not shrink)
            new["value entries"] += 1 + varint_len(len(content)) + len(content)
            new["index rows"] += 8 + 4 + 4  # cid prefix, offset, length
        else:
            records += 1
            rec = cbor2.loads(content)
            now["record entries"] += head + length
            now["index rows"] += 108
            git = rec.get("git")
            gi = None
            if git is not None:
                gi = commits.setdefault(git, len(commits))
            body = compact_record(rec, gi)
            new["record entries"] += 1 + varint_len(len(body)) + len(body)
            new["index rows"] += 8 + 8 + 4 + 4  # key prefix, hid prefix, offset, length
    new["git table"] = sum(len(canonical(c)) for c in commits)
    fixed = len(idx) - 64 - n_values * 44 - n_calls * 108 + (len(pack) - sum(
        v for k, v in now.items() if k != "index rows"))
    print(f"{os.path.basename(idx_path)}: {records} calls, {n_values} values")
    print("| item | format 2, bytes per call | proposal, bytes per call |")
    print("| --- | --- | --- |")
    for k in ["record entries", "value entries", "index rows", "git table"]:
        print(f"| {k} | {now.get(k, 0) / records:.1f} | {new[k] / records:.1f} |")
    total_now = (sum(now.values()) + fixed) / records
    total_new = (sum(new.values()) + fixed) / records
    print(f"| total (with headers and hashes) | {total_now:.1f} | {total_new:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
