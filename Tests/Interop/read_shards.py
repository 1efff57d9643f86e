#!/usr/bin/env python3
"""Reads a swift-unet shard set with only the standard library's tarfile and numpy (and with
the webdataset package when it is installed) and checks every sample against the
expectations the Swift side wrote: member names, dtypes, shapes, a SHA-256 of the array
bytes, the JSON record, and the manifest's member offsets.

usage: read_shards.py SHARD_DIR EXPECTATIONS.json
Prints one line per check group; exit status 0 when everything matches.
"""
import hashlib
import io
import json
import os
import sys
import tarfile

import numpy as np


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def main():
    shard_dir, expectations_path = sys.argv[1], sys.argv[2]
    with open(os.path.join(shard_dir, "manifest.json")) as f:
        manifest = json.load(f)
    with open(expectations_path) as f:
        expected = {e["key"]: e for e in json.load(f)}
    if manifest["format"] != "swift-unet-shards" or manifest["version"] != 1:
        fail("unexpected manifest format/version")

    # 1. tarfile + numpy: group members by key (the part before the first dot), as WebDataset does.
    seen = {}
    for shard in manifest["shards"]:
        path = os.path.join(shard_dir, shard["name"])
        if os.path.getsize(path) != shard["bytes"]:
            fail(f"{shard['name']}: size differs from the manifest")
        with open(path, "rb") as f:
            raw = f.read()
        if hashlib.sha256(raw).hexdigest() != shard["sha256"]:
            fail(f"{shard['name']}: SHA-256 differs from the manifest")
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                data = tar.extractfile(member).read()
                sample = seen.setdefault(key, {})
                sample[suffix] = np.load(io.BytesIO(data)) if suffix.endswith(".npy") else json.loads(data)
        # The manifest's offsets point at the same bytes.
        for entry in shard["members"]:
            for part in ("image", "mask", "weight", "json"):
                if entry.get(part) is None:
                    continue
                offset, size = entry[part]
                chunk = raw[offset:offset + size]
                if part == "json":
                    if json.loads(chunk) != seen[entry["key"]]["json"]:
                        fail(f"{entry['key']}: json at the manifest offset differs")
                else:
                    if digest(np.load(io.BytesIO(chunk))) != digest(seen[entry["key"]][part + ".npy"]):
                        fail(f"{entry['key']}: {part} at the manifest offset differs")
    if set(seen) != set(expected):
        fail(f"keys differ: {sorted(set(seen) ^ set(expected))[:5]}")
    for key, sample in seen.items():
        e = expected[key]
        for part in ("image", "mask", "weight"):
            if part not in e:
                continue
            a = sample.get(part + ".npy")
            if a is None:
                fail(f"{key}: no {part}.npy member")
            if str(a.dtype) != e[part]["dtype"] or list(a.shape) != e[part]["shape"]:
                fail(f"{key}.{part}: {a.dtype} {a.shape}, expected {e[part]['dtype']} {e[part]['shape']}")
            if digest(a) != e[part]["sha256"]:
                fail(f"{key}.{part}: values differ")
            if abs(float(a.astype(np.float64).sum()) - e[part]["sum"]) > 1e-3 * max(1.0, abs(e[part]["sum"])):
                fail(f"{key}.{part}: sum {a.sum()} differs from {e[part]['sum']}")
        if sample["json"].get("key") != key or sample["json"].get("index") != e["index"]:
            fail(f"{key}: json record differs")
    print(f"tarfile+numpy: {len(seen)} samples in {len(manifest['shards'])} shards match")

    # 2. The webdataset package, where it is installed.
    try:
        import webdataset as wds
    except Exception:  # noqa: BLE001
        print("webdataset: not installed, skipped")
        return
    urls = [os.path.join(shard_dir, s["name"]) for s in manifest["shards"]]
    count = 0
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        key = sample["__key__"]
        e = expected[key]
        for part in ("image", "mask", "weight"):
            if part in e and digest(sample[part + ".npy"]) != e[part]["sha256"]:
                fail(f"webdataset {key}.{part}: values differ")
        count += 1
    if count != len(expected):
        fail(f"webdataset yielded {count} samples, expected {len(expected)}")
    print(f"webdataset: {count} samples match")


if __name__ == "__main__":
    main()
