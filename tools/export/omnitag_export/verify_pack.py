"""The tool's own check of a freshly written pack: onnxruntime (through Node) vs PyTorch."""
from __future__ import annotations

import glob
import os

import numpy as np
import torch
from PIL import Image

from .errors import ExportError
from .models import Modules
from .pack import MEAN, SELFTEST_TEXTS, STD
from .tokenizer import ClipTokenizer
from .verify import OnnxRunner, max_abs

FP32_TOL = 1e-4


def preprocess(path: str, size: int) -> np.ndarray:
    """RGB, bilinear resize with antialiasing (PIL), [0,1], normalised, CHW."""
    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
    a = (a - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return a.transpose(2, 0, 1).copy()


def reference_attention(decoder, image_embeds: torch.Tensor, label_embeds: torch.Tensor,
                        label_mask: torch.Tensor) -> np.ndarray:
    """Cross-attention [B,C,L,T] (mean over heads) recomputed from what the decoder's own plain
    forward() computes: forward hooks record each layer's query and key projections, and the
    attention is softmax(q·k/sqrt(head_dim)) per head, in float64. Independent of the
    heat-map graph's code path (forward_with_attention)."""
    seen = []
    hooks = []
    for layer in decoder.tagging_head.encoder.layer:
        att = layer.crossattention.self
        rec = {}
        seen.append((att.heads, rec))
        hooks.append(att.query.register_forward_hook(lambda m, i, o, rec=rec: rec.__setitem__("q", o)))
        hooks.append(att.key.register_forward_hook(lambda m, i, o, rec=rec: rec.__setitem__("k", o)))
    try:
        with torch.no_grad():
            decoder(image_embeds, label_embeds, label_mask)
    finally:
        for h in hooks:
            h.remove()
    maps = []
    for heads, rec in seen:
        q, k = rec["q"].double(), rec["k"].double()
        b, c, hidden = q.shape
        dh = hidden // heads
        qh = q.view(b, c, heads, dh).permute(0, 2, 1, 3)
        kh = k.view(b, k.shape[1], heads, dh).permute(0, 2, 1, 3)
        probs = torch.softmax(qh @ kh.transpose(-1, -2) / np.sqrt(dh), dim=-1)
        maps.append(probs.mean(dim=1))
    return torch.stack(maps, dim=2).numpy()


def verify(pack_dir: str, mods: Modules, tok: ClipTokenizer, builtin: np.ndarray, counts: np.ndarray,
           precision: str, images_dir: str | None, extra_texts=(), log=print, max_images: int = 2,
           providers=None, heatmaps: dict | None = None) -> dict:
    d = mods.dims
    s = d.swin.image_size
    c, dd, _ = builtin.shape
    mask = np.arange(dd)[None, :] < counts[:, None]
    rng = np.random.default_rng(1234)
    batches = {"random": rng.standard_normal((2, 3, s, s)).astype(np.float32)}
    if images_dir and os.path.isdir(images_dir):
        files = sorted(glob.glob(os.path.join(images_dir, "*.jpg")) + glob.glob(os.path.join(images_dir, "*.png")))
        if files:
            batches["real"] = np.stack([preprocess(f, s) for f in files[:max_images]])
    runner = OnnxRunner(pack_dir, providers=providers)
    expect = []
    try:
        with torch.no_grad():
            for key, pix in batches.items():
                emb = mods.image_encoder(torch.from_numpy(pix))
                runner.add("image_encoder.onnx", {"pixel_values": pix}, ["image_embeds"])
                expect.append((f"image_embeds[{key}]", {"image_embeds": emb.numpy()}))
                lo, w = mods.tag_decoder(emb, torch.from_numpy(builtin), torch.from_numpy(mask))
                runner.add("tag_decoder.onnx", {"image_embeds": emb.numpy(), "label_embeds": builtin,
                                                "label_mask": mask}, ["logits", "description_weights"])
                expect.append((f"decoder[{key}, builtin C={c} D={dd}]",
                               {"logits": lo.numpy(), "description_weights": w.numpy()}))
            # per-tag description counts: a padded, masked subset
            k = min(c, 16)
            sub_counts = rng.integers(1, dd + 1, size=k)
            sub_mask = np.arange(dd)[None, :] < sub_counts[:, None]
            sub = builtin[:k].copy()
            sub[~sub_mask] = 0.0
            lo, w = mods.tag_decoder(emb, torch.from_numpy(sub), torch.from_numpy(sub_mask))
            runner.add("tag_decoder.onnx", {"image_embeds": emb.numpy(), "label_embeds": sub,
                                            "label_mask": sub_mask}, ["logits", "description_weights"])
            expect.append((f"decoder[masked subset C={k}]", {"logits": lo.numpy(), "description_weights": w.numpy()}))
            if heatmaps:
                att = reference_attention(mods.tag_decoder, emb, torch.from_numpy(sub), torch.from_numpy(sub_mask))
                runner.add(heatmaps["graph"], {"image_embeds": emb.numpy(), "label_embeds": sub,
                                               "label_mask": sub_mask}, ["logits", heatmaps["output"]])
                expect.append((f"heatmap decoder[masked subset C={k}]", {"logits": lo.numpy(), heatmaps["output"]: att}))
            texts = list(SELFTEST_TEXTS) + list(extra_texts)
            ids = np.array([tok.tokenize(t, d.text.context) for t in texts], dtype=np.int64)
            te = mods.text_encoder(torch.from_numpy(ids))
            runner.add("text_encoder.onnx", {"input_ids": ids}, ["text_embeds"])
            expect.append((f"text_embeds[N={len(texts)}, L={ids.shape[1]}]", {"text_embeds": te.numpy()}))
            short = int((ids != 0).sum(1).max())
            runner.add("text_encoder.onnx", {"input_ids": ids[:, :short].copy()}, ["text_embeds"])
            expect.append((f"text_embeds[L={short}]", {"text_embeds": te.numpy()}))
        got = runner.execute()
    finally:
        runner.close()
    report = {"precision": precision, "checks": {}, "skipped": None}
    if got is None:
        report["skipped"] = runner.skipped_reason
        log(f"SKIPPED the onnxruntime comparison: {runner.skipped_reason}")
        return report
    worst = 0.0
    for (label, exp), out in zip(expect, got):
        for name, ref in exp.items():
            diff = max_abs(out[name], ref)
            if not np.all(np.isfinite(out[name])):
                raise ExportError(f"verification failed: {label} {name} has non-finite values")
            report["checks"][f"{label} {name}"] = diff
            log(f"  max |onnx - torch| {label} {name}: {diff:.3g}")
            if name != "description_weights":
                worst = max(worst, diff)
    report["max_abs"] = worst
    if precision == "fp32" and worst > FP32_TOL:
        raise ExportError(f"verification failed: onnxruntime differs from PyTorch by {worst:.3g} > {FP32_TOL}")
    return report
