"""Command line: python3 -m tools.export --help"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch

from .errors import ExportError
from .paths import REPO_ROOT, shared


def _merges(bpe: str | None):
    from .tokenizer import read_merges
    cands = [bpe] if bpe else [shared("data", "clip", "bpe_simple_vocab_16e6.txt.gz"),
                               os.path.join(REPO_ROOT, "packs", "tiny", "tokenizer.json")]
    for p in cands:
        if p and os.path.exists(p):
            if p.endswith(".json"):
                with open(p, encoding="utf-8") as fh:
                    m = json.load(fh)["model"]["merges"]
                return [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m], p
            return read_merges(p), p
    raise ExportError("CLIP's BPE merges not found: pass --bpe bpe_simple_vocab_16e6.txt.gz (from openai/CLIP) "
                      "or --bpe <an existing pack>/tokenizer.json")


def _vocab(args):
    from .vocab import load_ram_vocab, load_tag_file
    if args.tags:
        return load_tag_file(args.tags, args.thresholds)
    if args.ram_dir:
        return load_ram_vocab(args.ram_dir)
    default = shared("data", "ram")
    if args.random_init and os.path.isdir(default):
        return load_ram_vocab(default)
    raise ExportError("no tag list: pass --ram-dir <recognize-anything checkout or ram package> or --tags FILE")


def _texts_embed(text_encoder, tok, texts, batch=512):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            ids = np.array([tok.tokenize(t) for t in texts[i:i + batch]], dtype=np.int64)
            ids = ids[:, :int((ids != 0).sum(1).max())]
            out.append(text_encoder(torch.from_numpy(ids)).numpy())
    return np.concatenate(out)


TINY_TEMPLATES = ["a photo of a {}.", "a picture of a {}.", "an image showing a {}."]


def build_random(kind: str, seed: int, vocab, tok, log):
    from .models import build_modules, full_dims, random_init_, tiny_dims
    dims = tiny_dims() if kind == "tiny" else full_dims()
    mods = random_init_(build_modules(dims), seed)
    # Derived numbers (tiny label embeddings, bias calibration) are computed in float64 and
    # rounded once, so the committed tiny pack does not depend on the BLAS library.
    mods64 = copy.deepcopy(mods)
    for m in (mods64.image_encoder, mods64.tag_decoder, mods64.text_encoder):
        m.double()
    c, e = len(vocab), dims.decoder.embed_dim
    if kind == "tiny":
        # 3 descriptions for even tags, 2 for odd ones: exercises the padding mask
        counts = np.array([3 if i % 2 == 0 else 2 for i in range(c)])
        dd = 3
        texts, where = [], []
        for i, name in enumerate(vocab.names):
            for d in range(counts[i]):
                texts.append(TINY_TEMPLATES[d].format(name))
                where.append((i, d))
        log(f"embedding {len(texts)} template descriptions with the tiny text encoder ...")
        emb = _texts_embed(mods64.text_encoder, tok, texts).astype(np.float32)
        label = np.zeros((c, dd, e), np.float32)
        for (i, d), v in zip(where, emb):
            label[i, d] = v
    else:
        dd = 51
        counts = np.full(c, dd)
        g = torch.Generator().manual_seed(seed + 1)
        t = torch.randn(c * dd, e, generator=g)
        label = (t / t.norm(dim=-1, keepdim=True)).view(c, dd, e).numpy()
    from .models import calibrate_bias_
    from .pack import selftest_pixels
    k = min(c, 512)
    mask = torch.from_numpy(np.arange(dd)[None, :] < counts[:k, None])
    pix = torch.from_numpy(selftest_pixels(2, dims.swin.image_size)).double()
    calibrate_bias_(mods64, torch.from_numpy(label[:k]).double(), mask, pix)
    with torch.no_grad():
        mods.tag_decoder.fc.bias.copy_(mods64.tag_decoder.fc.bias.float())
    return mods, label, counts


def _int8_drift(tmp, manifest, stored, counts, vocab, images, size, report, log, providers):
    """int8 graphs vs their float32 originals (both in onnxruntime): the drift report goes into
    the manifest, and the self-test bound is set from the measured deviation."""
    from .drift import format_drift, image_files, measure_drift
    from .pack import selftest_pixels
    from .quantize import FLOAT_DIR, selftest_tolerance
    from .verify_pack import preprocess
    with open(os.path.join(tmp, "selftest.json"), encoding="utf-8") as fh:
        st = json.load(fh)
    mask = np.arange(stored.shape[1])[None, :] < counts[:, None]
    log("measuring the int8 drift: int8 vs float32 graphs in onnxruntime ...")
    drift = measure_drift(tmp, os.path.join(tmp, FLOAT_DIR), stored, mask, np.asarray(vocab.thresholds, np.float64),
                          image_files(images), preprocess, size, st, selftest_pixels(2, size),
                          providers=providers, log=log)
    if drift is None:
        return
    q = manifest["quantization"]
    q["drift"] = drift
    q["selftestTolerance"] = selftest_tolerance(drift["selftestMaxAbsDiff"])
    for line in format_drift(drift):
        log(line)
    log(f"  self-test: int8 vs PyTorch float max |diff| {drift['selftestMaxAbsDiff']:.4g}; "
        f"bound recorded {q['selftestTolerance']}")
    report["int8Drift"] = drift


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m tools.export",
        description="Export RAM++ (image encoder + tag decoder) and CLIP's text encoder to an Omnitag model pack.")
    src = p.add_argument_group("source (official checkpoints, or --random-init)")
    src.add_argument("--ram-checkpoint", help="ram_plus_swin_large_14m.pth (state dict under 'model')")
    src.add_argument("--clip", help="OpenAI CLIP ViT-B-16.pt (TorchScript) or a plain CLIP state dict")
    src.add_argument("--random-init", choices=["tiny", "full"], help="seeded random weights instead of checkpoints")
    src.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    voc = p.add_argument_group("built-in vocabulary")
    voc.add_argument("--ram-dir", help="recognize-anything checkout, installed 'ram' package, or the folder of "
                                       "ram_tag_list*.txt")
    voc.add_argument("--tags", help="tag list instead of --ram-dir: .json (strings or {name,nameZh,threshold}) or .txt")
    voc.add_argument("--thresholds", help="per-tag thresholds, one a line (with --tags)")
    p.add_argument("--bpe", help="CLIP's bpe_simple_vocab_16e6.txt.gz, or a tokenizer.json of an existing pack")
    p.add_argument("--out", required=True, help="pack folder to write (replaced atomically if it holds a pack)")
    p.add_argument("--name", help="pack name for the manifest")
    p.add_argument("--fp16", action="store_true", help="float16 graphs (fp32 inputs/outputs), for GPUs")
    p.add_argument("--heatmaps", action="store_true",
                   help="also write tag_decoder_heatmaps.onnx: the decoder with its cross-attention over the image "
                        "grid as an output (per tag, per layer, averaged over heads); tag_decoder.onnx is unchanged")
    p.add_argument("--quantize", choices=["int8"],
                   help="int8: the image encoder's and tag decoder's matmuls in int8 (weights per output channel, "
                        "activations quantised at run time); float32 inputs and outputs; the export measures the "
                        "drift against float32 on the verification photos")
    p.add_argument("--int8-format", choices=["matmulinteger", "dynamicquantizematmul"], default="matmulinteger",
                   help="ONNX formulation of the int8 matmuls (docs/export.md)")
    p.add_argument("--builtin-dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--external-data", choices=["auto", "always", "never"], default="auto",
                   help="ONNX weights in a .data file beside each graph (auto: graphs over 2 GB)")
    voc.add_argument("--descriptions-per-tag", type=int,
                     help="descriptions per tag in the checkpoint's label_embed (default: 51 when the rows divide "
                          "by 51, else rows / tags)")
    p.add_argument("--decoder-heads", type=int, default=4, help="tag decoder attention heads (not in the weights)")
    p.add_argument("--text-heads", type=int, help="CLIP text heads (default: width // 64, CLIP's rule)")
    p.add_argument("--image-size", type=int, help="only for checkpoints without attn_mask buffers")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime vs PyTorch comparison")
    p.add_argument("--verify-images", help="folder of real images for the comparison "
                                           "(default: the shared data images when present)")
    p.add_argument("--verify-ep", default="cpu",
                   help="onnxruntime execution provider(s) for the comparison, comma-separated (e.g. cuda,cpu)")
    p.add_argument("--report", help="write the verification figures to this JSON file")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    args = p.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    t0 = time.time()
    try:
        if args.fp16 and args.quantize:
            raise ExportError("--fp16 and --quantize int8 exclude each other")
        torch.manual_seed(0)
        if args.threads:
            torch.set_num_threads(args.threads)
        from .tokenizer import ClipTokenizer
        merges, merges_src = _merges(args.bpe)
        tok = ClipTokenizer(merges)
        log(f"tokenizer: {merges_src}")
        if args.random_init:
            if args.ram_checkpoint or args.clip:
                raise ExportError("--random-init excludes --ram-checkpoint/--clip")
            vocab = _vocab(args)
            mods, label, counts = build_random(args.random_init, args.seed, vocab, tok, log)
            name = args.name or {"tiny": "omnitag-tiny-random", "full": "ram-plus-swin-large-random"}[args.random_init]
            desc = (f"Seeded random weights (seed {args.seed}) at {args.random_init} dimensions; "
                    "logits carry no meaning.")
            seed, rinit = args.seed, args.random_init
        else:
            if not args.ram_checkpoint or not args.clip:
                raise ExportError("pass --ram-checkpoint and --clip (or --random-init tiny|full)")
            from .checkpoints import load_official
            vocab = _vocab(args)
            log(f"loading {args.ram_checkpoint} and {args.clip} ...")
            mods, le = load_official(args.ram_checkpoint, args.clip, args.decoder_heads, args.text_heads,
                                     args.image_size)
            rows, c = le.shape[0], len(vocab)
            # upstream RAM++ always stores 51 descriptions per tag
            want_d = args.descriptions_per_tag or (51 if rows % 51 == 0 else None)
            if rows % c or (want_d and rows != c * want_d):
                hint = f" = {rows // want_d} tags x {want_d} descriptions" if want_d and rows % want_d == 0 else ""
                raise ExportError(f"the tag list has {c} tags but the checkpoint's label_embed has {rows} rows{hint}: "
                                  "wrong tag list for this checkpoint")
            dd = rows // c
            label = le.view(c, dd, -1).numpy()
            counts = np.full(c, dd)
            name = args.name or os.path.splitext(os.path.basename(args.ram_checkpoint))[0].replace("_", "-")
            desc = f"Exported from {os.path.basename(args.ram_checkpoint)} and {os.path.basename(args.clip)}."
            seed, rinit = None, None
        d = mods.dims
        log(f"dims: image {d.swin.image_size}px, swin embed {d.swin.embed_dim} depths {d.swin.depths} "
            f"heads {d.swin.heads} window {d.swin.window}; T={d.image_tokens} E={d.decoder.embed_dim}; "
            f"decoder {d.decoder.layers}x{d.decoder.hidden} ({d.decoder.heads} heads); text {d.text.layers}x"
            f"{d.text.width} ({d.text.heads} heads); vocabulary {len(vocab)} x {label.shape[1]}")
        precision = "int8" if args.quantize == "int8" else "fp16" if args.fp16 else "fp32"
        report = {}

        def verify_fn(tmp, manifest):
            if args.no_verify:
                log("verification skipped (--no-verify)")
                return
            from .verify_pack import verify
            images = args.verify_images or shared("data", "images")
            stored = label.astype({"float32": "<f4", "float16": "<f2"}[args.builtin_dtype]).astype(np.float32)
            log("verifying: onnxruntime (node) vs PyTorch ...")
            if precision == "int8":
                from .quantize import FLOAT_DIR
                report.update(verify(os.path.join(tmp, FLOAT_DIR), mods, tok, stored, counts, "fp32", images,
                                     extra_texts=vocab.names[:8], log=log, providers=args.verify_ep.split(",")))
                _int8_drift(tmp, manifest, stored, counts, vocab, images, mods.dims.swin.image_size, report, log,
                            args.verify_ep.split(","))
                return
            report.update(verify(tmp, mods, tok, stored, counts, precision, images,
                                 extra_texts=vocab.names[:8], log=log, providers=args.verify_ep.split(","),
                                 heatmaps=manifest.get("heatmaps")))

        from .pack import write_pack
        manifest = write_pack(args.out, mods, vocab, label, counts, merges, name=name, description=desc,
                              precision=precision, builtin_dtype=args.builtin_dtype, external=args.external_data,
                              random_init=rinit, seed=seed, verify_fn=verify_fn,
                              heatmaps=args.heatmaps, log=log, int8_format=args.int8_format)
        total = sum(f["bytes"] for f in manifest["files"].values())
        log(f"pack written: {args.out} ({total / 1e6:.1f} MB, {len(manifest['files'])} files) "
            f"in {time.time() - t0:.0f} s")
        if args.report:
            report["seconds"] = time.time() - t0
            report["files"] = manifest["files"]
            with open(args.report, "w") as fh:
                json.dump(report, fh, indent=2)
        return 0
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc} ({exc.filename or ''})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
