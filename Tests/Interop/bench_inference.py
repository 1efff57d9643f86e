"""`unet predict` vs onnxruntime (CPU) per 512 × 512 image, at 1 and 2 threads.

    python bench_inference.py UNET CHECKPOINT IMAGE... [--threads 1,2] [--repeats 5]

Exports CHECKPOINT to ONNX (next to it), then for each thread count:
  unet predict: one process over all IMAGEs (--tile chosen so each image is one tile, as
  below; --prob-format npy, so no deflate); the per-image seconds it logs (network, softmax,
  labels, writing the PNG and .npy), median over the images after the first;
  onnxruntime: the same network input (the image normalised as the checkpoint says, mirrored
  to the tile `unet predict` uses: 544² for a same-padding depth-4 network, 700² for a valid
  one), intra-op threads = N, median of --repeats runs after one warm-up.
Prints one JSON line per (engine, threads). Run with `env -u OPENBLAS_CORETYPE`.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("unet")
    ap.add_argument("checkpoint")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    model_path = a.checkpoint.rsplit(".", 1)[0] + ".onnx"
    subprocess.run([a.unet, "export", a.checkpoint, "--format", "onnx", "--out", model_path], check=True, capture_output=True)
    meta = {p.key: p.value for p in onnx.load(model_path, load_external_data=False).metadata_props}
    sizes, network = json.loads(meta["input_sizes"]), json.loads(meta["network"])
    norm = json.loads(meta["normalization"])
    side = 512
    if sizes["output_offset"] == 0:  # same padding: context 2^depth per side, as unet predict
        margin = 1 << network["depth"]
        tile_input = (side + 2 * margin) // sizes["step"] * sizes["step"]
        tile_arg = side
    else:  # valid: the smallest legal input whose output covers the image
        needed = side - sizes["output_offset"]
        tile_input = sizes["min"] + max(0, -(-(needed - sizes["min"]) // sizes["step"])) * sizes["step"]
        tile_arg = tile_input + sizes["output_offset"]
        margin = (tile_input - tile_arg) // 2
    image = np.asarray(Image.open(a.images[0]), dtype=np.float32)[:side, :side]
    for s in norm:
        if s["method"] == "scale":
            image = image * np.float32(s["factor"])
    extra = tile_input - side - margin
    x = np.pad(image, ((margin, extra), (margin, extra)), mode="reflect")[None, None].astype(np.float32)
    for threads in [int(t) for t in a.threads.split(",")]:
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([a.unet, "predict", a.checkpoint, *a.images, "--out", out, "--tile", str(tile_arg),
                                "--threads", str(threads), "--prob-format", "npy"], check=True, capture_output=True, text=True)
        per_image = [float(m) for m in re.findall(r"\(([0-9.]+) s\)", r.stdout)]
        steady = per_image[1:] if len(per_image) > 1 else per_image
        print(json.dumps({"engine": "unet predict", "threads": threads, "tile": tile_input,
                          "ms_per_image": round(1000 * statistics.median(steady), 1), "images": len(per_image)}))
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(model_path, o, providers=["CPUExecutionProvider"])
        session.run(None, {"input": x})
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            session.run(None, {"input": x})
            times.append(time.perf_counter() - t0)
        print(json.dumps({"engine": "onnxruntime " + ort.__version__, "threads": threads, "tile": tile_input,
                          "ms_per_image": round(1000 * statistics.median(times), 1), "repeats": a.repeats}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
