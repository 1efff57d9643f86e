"""Checks `unet export` and `unet predict` outputs with the Python ecosystem's own readers.

    check_export.py onnx CASES.json       onnx checker + onnxruntime vs `unet predict`, TIFF readers
    check_export.py bioimageio ZIP...     bioimageio.spec validation + bioimageio.core test_model
    check_export.py torch CASES.json      safetensors -> reference module (+ peers' build_unet)

Each prints one line per case and exits non-zero at the first mismatch. Tolerances: 1e-4
max abs for probabilities.
"""
import json
import os
import sys

TOLERANCE = 1e-4
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def tile_region(probabilities, case):
    """The part of a tile's network output that `unet predict` kept (where no later tile
    overwrote it), and the matching region of the whole-image probabilities."""
    import numpy as np
    t, x, y = case["tile_output"], case["tile_x"], case["tile_y"]
    whole = np.load(case["prob_npy"])
    k, h, w = whole.shape
    off = (probabilities.shape[-1] - t) // 2
    hh, ww = min(case["owned_height"], h - y), min(case["owned_width"], w - x)
    return probabilities[0, :, off:off + hh, off:off + ww], whole[:, y:y + hh, x:x + ww]


def check_onnx(cases):
    sys.modules["imagecodecs"] = None  # as if the optional codecs were not installed
    import numpy as np
    import onnx
    import onnxruntime as ort
    import tifffile
    from PIL import Image
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for case in cases:
        name = case["name"]
        model = onnx.load(case["onnx"])
        onnx.checker.check_model(model, full_check=True)
        if model.ir_version != 8 or model.opset_import[0].version != 17:
            fail(f"{name}: ir {model.ir_version}, opset {model.opset_import[0].version}")
        inp, out = model.graph.input[0], model.graph.output[0]
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        if inp.name != "input" or out.name != "probabilities" or dims[2:] != ["height", "width"]:
            fail(f"{name}: graph input {inp.name} {dims}, output {out.name}")
        meta = {p.key: p.value for p in model.metadata_props}
        network = json.loads(meta["network"])
        if network != case["network"] or "normalization" not in meta or meta["architecture"] != case["architecture"]:
            fail(f"{name}: metadata network {meta.get('network')}")
        names = {t.name for t in model.graph.initializer}
        if not any(n.startswith("head.") for n in names) or not ({"down.0.0.weight", "enc.0.0.0.weight"} & names):
            fail(f"{name}: initialiser names {sorted(names)[:5]}")
        tile = np.load(case["tile"])
        p = ort.InferenceSession(case["onnx"], options, providers=["CPUExecutionProvider"]).run(None, {"input": tile})[0]
        got, want = tile_region(p, case)
        diff = float(np.abs(got - want).max())
        if not diff <= TOLERANCE:
            fail(f"{name}: onnxruntime vs unet predict max abs {diff:.3g}")
        line = f"{name}: onnxruntime vs unet predict max abs {diff:.2e} on {tile.shape[2]}x{tile.shape[3]}"
        if "onnx_in_graph" in case:
            raw = np.load(case["raw_tile"])
            q = ort.InferenceSession(case["onnx_in_graph"], options, providers=["CPUExecutionProvider"]).run(None, {"input": raw})[0]
            got, want = tile_region(q, case)
            d2 = float(np.abs(got - want).max())
            if not d2 <= TOLERANCE:
                fail(f"{name}: in-graph normalisation vs unet predict max abs {d2:.3g}")
            line += f"; raw input, normalisation in the graph {d2:.2e}"
        # The probability TIFF: tifffile without imagecodecs, and Pillow, page by page.
        whole = np.load(case["prob_npy"])
        t = tifffile.imread(case["prob_tif"])
        if t.shape != whole.shape or t.dtype != np.float32 or not np.array_equal(t, whole):
            fail(f"{name}: tifffile read {t.shape} {t.dtype}, expected {whole.shape} float32 equal to the .npy")
        with tifffile.TiffFile(case["prob_tif"]) as f:
            if len(f.pages) != whole.shape[0] or any(pg.predictor != 1 or pg.compression != 8 for pg in f.pages):
                fail(f"{name}: pages {[(pg.compression, pg.predictor) for pg in f.pages]}")
        im = Image.open(case["prob_tif"])
        if im.n_frames != whole.shape[0]:
            fail(f"{name}: Pillow sees {im.n_frames} pages")
        for k in range(im.n_frames):
            im.seek(k)
            if im.mode != "F" or not np.array_equal(np.asarray(im, dtype=np.float32), whole[k]):
                fail(f"{name}: Pillow page {k} ({im.mode}) differs")
        print(line + f"; prob.tif read by tifffile (no imagecodecs) and Pillow ({whole.shape[0]} pages)")


def check_bioimageio(packages):
    from bioimageio.core import test_model
    from bioimageio.spec import InvalidDescr, load_description
    for path in packages:
        d = load_description(path)
        if isinstance(d, InvalidDescr):
            d.validation_summary.display()
            fail(f"{path}: not a valid bioimage.io model")
        if d.weights.onnx is None or not any(c.doi and "24574-4_28" in str(c.doi) for c in d.cite):
            fail(f"{path}: no ONNX weights or no U-Net citation")
        summary = test_model(path)
        if summary.status != "passed":
            summary.display()
            fail(f"{path}: bioimageio.core test_model: {summary.status}")
        errors = [e.msg for det in summary.details for e in det.errors]
        print(f"{os.path.basename(path)}: bioimageio.spec {d.format_version} valid, test_model {summary.status}"
              f" ({len(summary.details)} checks, {len(errors)} errors)")


def check_torch(cases):
    extra = os.environ.get("UNET_EXTRA_SITE")
    try:
        from safetensors.torch import load_file
    except ImportError:
        if not extra:
            raise
        sys.path.append(extra)
        from safetensors.torch import load_file
    import numpy as np
    import torch
    sys.path.insert(0, HERE)
    from unet_reference import MODULES, prediction
    torch.set_num_threads(1)
    for case in cases:
        name = case["name"]
        architecture = case["network"]["architecture"]
        cfg = {k: v for k, v in case["network"].items() if k not in ("version", "architecture")}
        state = load_file(case["safetensors"])
        model = MODULES[architecture](**cfg)
        model.load_state_dict(state, strict=True)
        model.eval()
        tile = torch.from_numpy(np.load(case["tile"]))
        p = prediction(model, architecture, tile, case.get("inference")).numpy()
        want = np.load(case["expected"])
        diff = float(np.abs(p - want).max()) if p.shape == want.shape else float("inf")
        if not diff <= TOLERANCE:
            fail(f"{name}: torch {p.shape} vs swift {want.shape} max abs {diff:.3g}")
        line = f"{name}: load_state_dict(strict=True) + forward vs unet max abs {diff:.2e}"
        if architecture == "unet3p" and cfg.get("cgm"):
            with torch.no_grad():
                q = model(tile)[1]
            line += f" (CGM gate {'open' if bool(q[0, 1] > q[0, 0]) else 'closed'}: q = {q[0].tolist()})"
        if case.get("peers"):
            sys.path.insert(0, os.path.dirname(case["peers"]))
            import peers
            if architecture == "unet":
                peer = peers.build_unet(torch, cfg["padding"] == "same", base=cfg["base_width"], depth=cfg["depth"])
            elif architecture == "unetpp":
                peer = peers.build_unetpp(torch, base=cfg["base_width"], depth=cfg["depth"], deep_supervision=cfg["deep_supervision"],
                                          in_channels=cfg["input_channels"], classes=cfg["classes"])
                peer.deep_supervision = cfg["deep_supervision"]
            else:
                peer = peers.build_unet3p(torch, base=cfg["base_width"], deep_supervision=cfg["deep_supervision"], cgm=cfg["cgm"],
                                          in_channels=cfg["input_channels"], classes=cfg["classes"])
            peer.load_state_dict(state, strict=True)
            peer.eval()
            q = prediction(peer, architecture, tile, case.get("inference")).numpy()
            d2 = float(np.abs(q - want).max())
            if not d2 <= TOLERANCE:
                fail(f"{name}: peers build_unet max abs {d2:.3g}")
            line += f"; peers.py's builder loads it too ({d2:.2e})"
        print(line)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    mode = sys.argv[1]
    if mode == "onnx":
        check_onnx(json.load(open(sys.argv[2])))
    elif mode == "bioimageio":
        check_bioimageio(sys.argv[2:])
    elif mode == "torch":
        check_torch(json.load(open(sys.argv[2])))
    else:
        fail("unknown mode " + mode)
    print("all ok")


if __name__ == "__main__":
    main()
