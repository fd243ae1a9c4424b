"""Writing a model pack: graphs, tokenizer, built-in vocabulary, self-test, manifest.

Everything is written into a temporary folder beside the target and renamed into place
only after it is complete (and verified), so a failed run never leaves a pack that
looks whole.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import torch

from . import __version__
from .errors import ExportError
from .models import Modules, stage_resolutions
from .onnx_export import HEATMAP_GRAPH, HEATMAP_OUTPUT, check_graphs, export_graphs
from .tokenizer import ClipTokenizer, write_tokenizer_json

FORMAT = "omnitag-model-pack"
FORMAT_VERSION = 1
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
OPEN_SET_THRESHOLD = 0.5


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def dump_json(obj, path: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


def selftest_pixels(batch: int, size: int) -> np.ndarray:
    """Deterministic input any runtime can rebuild: ((3x + 5y + 7c + 11b) mod 17 - 8) / 4."""
    b, c, y, x = np.meshgrid(np.arange(batch), np.arange(3), np.arange(size), np.arange(size), indexing="ij")
    return (((3 * x + 5 * y + 7 * c + 11 * b) % 17 - 8) / 4).astype(np.float32)


SELFTEST_TEXTS = [
    "a photo of a cat.",
    "A Photo of a DOG, running on the beach!",
    "caf\u00e9 &amp; cr\u00e8me br\u00fbl\u00e9e",
    "\u4e2d\u6587\u6807\u7b7e \U0001F436",
    "it\u2019s a \u201cquoted\u201d word",
    "a very long description " + "that keeps going and going " * 12 + "until it is cut.",
]


def _round(a, nd=7):
    return [round(float(v), nd) for v in np.asarray(a).reshape(-1)]


def make_selftest(mods: Modules, tok: ClipTokenizer, builtin: np.ndarray, mask: np.ndarray, tol: float) -> dict:
    """Expected outputs (from the PyTorch modules) for fixed inputs: lets a runtime without
    Python check that it runs the pack correctly."""
    d = mods.dims
    pix = selftest_pixels(2, d.swin.image_size)
    ids = np.array([tok.tokenize(t, d.text.context) for t in SELFTEST_TEXTS], dtype=np.int64)
    # float64: expected values closer to exact, and independent of the BLAS library
    image_encoder = copy.deepcopy(mods.image_encoder).double()
    tag_decoder = copy.deepcopy(mods.tag_decoder).double()
    text_encoder = copy.deepcopy(mods.text_encoder).double()
    with torch.no_grad():
        emb = image_encoder(torch.from_numpy(pix).double())
        logits, weights = tag_decoder(emb, torch.from_numpy(builtin).double(), torch.from_numpy(mask))
        txt = text_encoder(torch.from_numpy(ids))
        # open set: 3 tags from the texts above; the third has one real description and one padded
        lab = torch.zeros(3, 2, txt.shape[1], dtype=torch.float64)
        lab[0], lab[1], lab[2, 0] = txt[0:2], txt[2:4], txt[4]
        omask = torch.tensor([[True, True], [True, True], [True, False]])
        ologits, oweights = tag_decoder(emb, lab, omask)
    del image_encoder, tag_decoder, text_encoder
    return {
        "tolerance": tol,
        "pixelValues": {"shape": list(pix.shape),
                        "formula": "pixel_values[b,c,y,x] = ((3*x + 5*y + 7*c + 11*b) mod 17 - 8) / 4"},
        "imageEmbedsToken0": [_round(emb[b, 0]) for b in range(2)],
        "builtin": {"logits": [_round(logits[b]) for b in range(2)],
                    "descriptionWeightsFirst3": [[_round(weights[b, c]) for c in range(3)] for b in range(2)]},
        "texts": [{"text": t, "inputIds": [int(v) for v in ids[i]], "embedding": _round(txt[i])}
                  for i, t in enumerate(SELFTEST_TEXTS)],
        "openSet": {"labelEmbeds": "texts[0..1] -> tag 0, texts[2..3] -> tag 1, texts[4] + padding -> tag 2",
                    "labelMask": omask.tolist(),
                    "logits": [_round(ologits[b]) for b in range(2)],
                    "descriptionWeights": [[_round(oweights[b, c]) for c in range(3)] for b in range(2)]},
    }


def _check_target(out: str) -> None:
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise ExportError(f"output folder's parent does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"output folder's parent is not writable: {parent}")
    if os.path.lexists(out):
        if not os.path.isdir(out):
            raise ExportError(f"output path exists and is not a folder: {out}")
        if os.listdir(out) and not os.path.exists(os.path.join(out, "manifest.json")):
            raise ExportError(f"output folder is not empty and holds no pack; refusing to replace it: {out}")
        if not os.access(out, os.W_OK | os.X_OK):
            raise ExportError(f"output folder is not writable: {out}")


def write_pack(out: str, mods: Modules, vocab, label_embeds: np.ndarray, counts: np.ndarray,
               merges: list, *, name: str, description: str, precision: str = "fp32",
               builtin_dtype: str = "float32", external: str = "auto", random_init=None, seed=None,
               verify_fn=None, heatmaps: bool = False, log=print, int8_format: str | None = None) -> dict:
    """label_embeds: [C,D,E] float32, zero rows past counts[c]. verify_fn(tmp_dir, manifest) may raise.
    precision "int8": image encoder and tag decoder (and the heat-map decoder, if any) quantised
    (quantize.py); their float32 graphs stay in tmp_dir/.float32 while verify_fn runs, and
    verify_fn may set the manifest's quantization.selftestTolerance from a measurement."""
    _check_target(out)
    out = os.path.abspath(out)
    c, dd, e = label_embeds.shape
    if len(vocab) != c:
        raise ExportError(f"the tag list has {len(vocab)} tags but the label embeddings have {c}")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=os.path.dirname(out))
    try:
        os.chmod(tmp, 0o755)
        log(f"writing graphs ({precision}) ...")
        graphs = export_graphs(mods, tmp, fp16=(precision == "fp16"), external=external, heatmaps=heatmaps)
        quantization = None
        if precision == "int8":
            from .quantize import DEFAULT_FORMAT, quantize_pack_graphs
            log("quantising the image encoder and tag decoder to int8 ...")
            quantization = quantize_pack_graphs(tmp, graphs, int8_format or DEFAULT_FORMAT, external)
        check_graphs(tmp, graphs)
        log("onnx checker: ok")
        write_tokenizer_json(merges, os.path.join(tmp, "tokenizer.json"))
        os.makedirs(os.path.join(tmp, "builtin"))
        mask = np.arange(dd)[None, :] < counts[:, None]
        uniform = bool(np.all(counts == dd))
        dump_json(vocab.entries(None if uniform else counts), os.path.join(tmp, "builtin", "tags.json"))
        np_dtype = {"float32": "<f4", "float16": "<f2"}[builtin_dtype]
        with open(os.path.join(tmp, "builtin", "label_embeds.bin"), "wb") as fh:
            fh.write(np.ascontiguousarray(label_embeds.astype(np_dtype)).tobytes())
        tok = ClipTokenizer(merges)
        stored = label_embeds.astype(np_dtype).astype(np.float32)
        tol = {"fp32": 1e-4, "fp16": 5e-2}.get(precision) or quantization["selftestTolerance"]
        selftest = make_selftest(mods, tok, stored, mask, tol)
        if precision == "int8":
            selftest["textEmbedsTolerance"] = 1e-4  # the text encoder stays float32: float32's bound
        dump_json(selftest, os.path.join(tmp, "selftest.json"))

        files = {}
        for g in graphs.values():
            for f in g:
                files[f] = None
        for f in ("tokenizer.json", "builtin/tags.json", "builtin/label_embeds.bin", "selftest.json"):
            files[f] = None
        for f in files:
            p = os.path.join(tmp, f)
            files[f] = {"bytes": os.path.getsize(p), "sha256": sha256_file(p)}
        text_id = hashlib.sha256(
            f"{files['text_encoder.onnx']['sha256']}:{files['tokenizer.json']['sha256']}".encode()).hexdigest()
        d = mods.dims
        manifest = {
            "format": FORMAT,
            "formatVersion": FORMAT_VERSION,
            "name": name,
            "description": description,
            "precision": precision,
            # what the server announces: a pack of random weights is a demo, its tags mean nothing
            "randomWeights": random_init is not None,
            "createdBy": {"tool": "omnitag-export", "version": __version__, "randomInit": random_init, "seed": seed},
            "image": {"size": d.swin.image_size, "mean": MEAN, "std": STD, "resize": "bilinear-antialias"},
            "dims": {
                "imageTokens": d.image_tokens,
                "embedDim": d.decoder.embed_dim,
                "textContext": d.text.context,
                "textVocabSize": d.text.vocab,
                "decoderHidden": d.decoder.hidden,
                "decoderLayers": d.decoder.layers,
                "decoderHeads": d.decoder.heads,
                "decoderIntermediate": d.decoder.intermediate,
                "swin": {"patch": d.swin.patch, "window": d.swin.window, "embedDim": d.swin.embed_dim,
                         "depths": list(d.swin.depths), "heads": list(d.swin.heads)},
                "text": {"width": d.text.width, "layers": d.text.layers, "heads": d.text.heads},
            },
            "reweightScale": float(torch.exp(mods.tag_decoder.reweight_scale.detach()).item()),
            "thresholds": {"builtinDefault": 0.68, "openSet": OPEN_SET_THRESHOLD},
            "tokenizer": {"file": "tokenizer.json", "bos": 49406, "eos": 49407, "pad": 0,
                          "context": d.text.context, "lowercase": True},
            "textEncoderId": text_id,
            "builtin": {"tags": "builtin/tags.json", "labelEmbeds": "builtin/label_embeds.bin",
                        "dtype": builtin_dtype, "count": c, "descriptionsPerTag": dd},
            "selftest": "selftest.json",
            "files": {k: files[k] for k in sorted(files)},
        }
        if heatmaps:
            grid = stage_resolutions(d.swin)[-1]
            # optional: packs without it have no heat maps and work as before (docs/model-pack.md)
            manifest["heatmaps"] = {"graph": HEATMAP_GRAPH, "output": HEATMAP_OUTPUT, "layers": d.decoder.layers,
                                    "grid": [grid, grid], "clsToken": 0}
        if quantization is not None:
            manifest["quantization"] = quantization
        if verify_fn is not None:
            verify_fn(tmp, manifest)
        if quantization is not None:
            _settle_int8(tmp, manifest, tol)
        dump_json(manifest, os.path.join(tmp, "manifest.json"))
        _swap_into_place(tmp, out)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _settle_int8(tmp: str, manifest: dict, written_tol: float) -> None:
    """The self-test bound measured during verification goes into selftest.json; the float32
    originals leave the pack."""
    from .quantize import FLOAT_DIR
    tol = manifest["quantization"]["selftestTolerance"]
    if tol != written_tol:
        p = os.path.join(tmp, "selftest.json")
        with open(p, encoding="utf-8") as fh:
            st = json.load(fh)
        st["tolerance"] = tol
        dump_json(st, p)
        manifest["files"]["selftest.json"] = {"bytes": os.path.getsize(p), "sha256": sha256_file(p)}
    shutil.rmtree(os.path.join(tmp, FLOAT_DIR), ignore_errors=True)


def _swap_into_place(tmp: str, out: str) -> None:
    old = None
    if os.path.lexists(out):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)
