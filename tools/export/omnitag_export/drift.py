"""What int8 costs: the quantised graphs against the float32 ones, both through onnxruntime-node.

Each photo runs the whole closed-set path at batch 1 in both precisions (int8 encoder -> int8
decoder, float32 encoder -> float32 decoder) over the pack's built-in vocabulary, and the
report compares:
- image embeddings: cosine similarity of every token (and of the global token 0), min / mean;
- logits: max and mean |int8 - float32|, and Pearson's r over all tags (per photo: min / mean);
- the tags that pass the pack's thresholds: counts in each precision, tags in both, Jaccard.
It also runs the self-test input (int8) against the self-test's PyTorch expectations, so the
pack's self-test bound can be set from a measurement.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from .errors import ExportError
from .verify import OnnxRunner


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na * nb, 1e-30)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 1.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def image_files(images_dir: str | None) -> list:
    if not images_dir or not os.path.isdir(images_dir):
        return []
    pats = ("*.jpg", "*.jpeg", "*.png", "*.JPG", "*.JPEG", "*.PNG")
    return sorted({f for p in pats for f in glob.glob(os.path.join(images_dir, p))})


def compare_outputs(emb_q, emb_f, logits_q, logits_f, thresholds) -> dict:
    """Drift figures for one set of outputs ([N,T,E] embeddings, [N,C] logits, [C] thresholds)."""
    cos = _cosine(emb_q, emb_f)  # [N, T]
    d = np.abs(logits_q.astype(np.float64) - logits_f.astype(np.float64))
    r = [_pearson(logits_q[i], logits_f[i]) for i in range(len(logits_q))]
    pq, pf = _sigmoid(logits_q) > thresholds, _sigmoid(logits_f) > thresholds
    per = []
    for i in range(len(logits_q)):
        both = int(np.sum(pq[i] & pf[i]))
        union = int(np.sum(pq[i] | pf[i]))
        per.append({"float32": int(pf[i].sum()), "int8": int(pq[i].sum()), "both": both,
                    "jaccard": both / union if union else 1.0})
    return {
        "imageEmbeddingCosine": {"min": float(cos.min()), "mean": float(cos.mean()),
                                 "globalTokenMin": float(cos[:, 0].min())},
        "logitAbsDiff": {"max": float(d.max()), "mean": float(d.mean())},
        "logitPearson": {"min": float(min(r)), "mean": float(np.mean(r))},
        "passedTags": {"float32": sum(p["float32"] for p in per), "int8": sum(p["int8"] for p in per),
                       "both": sum(p["both"] for p in per),
                       "jaccardMin": float(min(p["jaccard"] for p in per)),
                       "jaccardMean": float(np.mean([p["jaccard"] for p in per])),
                       "perImage": per},
    }


def measure_drift(pack_dir: str, float_dir: str, builtin: np.ndarray, mask: np.ndarray, thresholds: np.ndarray,
                  photos: list, preprocess, image_size: int, selftest: dict, selftest_pixels: np.ndarray,
                  providers=None, log=print) -> dict | None:
    """pack_dir holds the int8 graphs, float_dir (relative to pack_dir) the float32 ones.
    Returns None when onnxruntime-node is unavailable (reason logged)."""
    rel_f = os.path.relpath(float_dir, pack_dir)
    names = [os.path.basename(p) for p in photos]
    inputs = [(n, preprocess(p, image_size)[None]) for n, p in zip(names, photos)]
    if not inputs:
        # without photos, two fixed noise images still give a measurement (said in the report)
        rng = np.random.default_rng(1234)
        inputs = [(f"noise-{i}", rng.standard_normal((1, 3, image_size, image_size)).astype(np.float32))
                  for i in range(2)]
    runner = OnnxRunner(pack_dir, providers=providers)
    try:
        for _, pix in inputs:
            runner.add("image_encoder.onnx", {"pixel_values": pix}, ["image_embeds"])
            runner.add(f"{rel_f}/image_encoder.onnx", {"pixel_values": pix}, ["image_embeds"])
        runner.add("image_encoder.onnx", {"pixel_values": selftest_pixels}, ["image_embeds"])
        enc = runner.execute()
    finally:
        runner.close()
    if enc is None:
        log(f"SKIPPED the int8 drift measurement: {runner.skipped_reason}")
        return None
    runner = OnnxRunner(pack_dir, providers=providers)
    try:
        for i in range(len(inputs)):
            for j, model in ((0, "tag_decoder.onnx"), (1, f"{rel_f}/tag_decoder.onnx")):
                runner.add(model, {"image_embeds": enc[2 * i + j]["image_embeds"], "label_embeds": builtin,
                                   "label_mask": mask}, ["logits"])
        st_emb = enc[-1]["image_embeds"]
        runner.add("tag_decoder.onnx", {"image_embeds": st_emb, "label_embeds": builtin, "label_mask": mask},
                   ["logits", "description_weights"])
        dec = runner.execute()
    finally:
        runner.close()
    if dec is None:
        log(f"SKIPPED the int8 drift measurement: {runner.skipped_reason}")
        return None
    emb_q = np.stack([enc[2 * i]["image_embeds"][0] for i in range(len(inputs))])
    emb_f = np.stack([enc[2 * i + 1]["image_embeds"][0] for i in range(len(inputs))])
    lq = np.stack([dec[2 * i]["logits"][0] for i in range(len(inputs))])
    lf = np.stack([dec[2 * i + 1]["logits"][0] for i in range(len(inputs))])
    for a in (emb_q, lq):
        if not np.all(np.isfinite(a)):
            raise ExportError("int8 verification failed: the int8 graphs give non-finite values")
    report = compare_outputs(emb_q, emb_f, lq, lf, thresholds)
    report["images"] = [n for n, _ in inputs]
    report["tags"] = int(builtin.shape[0])
    report["batch"] = 1
    st_logits, st_w = dec[-1]["logits"], dec[-1]["description_weights"]
    report["selftestMaxAbsDiff"] = float(max(
        np.max(np.abs(st_emb[:, 0] - np.asarray(selftest["imageEmbedsToken0"]))),
        np.max(np.abs(st_logits - np.asarray(selftest["builtin"]["logits"]))),
        np.max(np.abs(st_w[:, :3] - np.asarray(selftest["builtin"]["descriptionWeightsFirst3"])))))
    return report


def format_drift(r: dict) -> list:
    """The drift report as lines for the export log."""
    p = r["passedTags"]
    lines = [
        f"int8 vs float32 over {len(r['images'])} image(s) ({', '.join(r['images'])}), {r['tags']} tags, batch 1:",
        f"  image embedding cosine: min {r['imageEmbeddingCosine']['min']:.5f}, "
        f"mean {r['imageEmbeddingCosine']['mean']:.5f} (global token min {r['imageEmbeddingCosine']['globalTokenMin']:.5f})",
        f"  logits |int8 - float32|: max {r['logitAbsDiff']['max']:.4g}, mean {r['logitAbsDiff']['mean']:.4g}; "
        f"Pearson r over all tags: min {r['logitPearson']['min']:.5f}, mean {r['logitPearson']['mean']:.5f}",
        f"  tags passing the thresholds: float32 {p['float32']}, int8 {p['int8']}, both {p['both']}; "
        f"Jaccard min {p['jaccardMin']:.3f}, mean {p['jaccardMean']:.3f}",
    ]
    for name, q in zip(r["images"], p["perImage"]):
        lines.append(f"    {name}: float32 {q['float32']}, int8 {q['int8']}, both {q['both']}, Jaccard {q['jaccard']:.3f}")
    return lines
