#!/usr/bin/env python3
"""PyTorch-eager timings of a pack's three graphs, built from the export tool's modules.

    /usr/bin/python3 bench/pytorch_eager.py [--pack packs/full] [--threads 2] [--warmup 2] [--runs 3] [--budget 10]
        [--items matmul,encoder_b1,encoder_b4,encoder_b8,decoder_c100,decoder_c1000,decoder_c4585,text]
    /usr/bin/python3 bench/pytorch_eager.py --serve ...     # one item name per stdin line, one JSON line back
    /usr/bin/python3 bench/pytorch_eager.py --write-matmul-onnx DIR [--matmul-rows 2304 --matmul-dims 768,3072,...]

Prints one JSON object on stdout (progress on stderr). OpenBLAS reads OPENBLAS_CORETYPE (set to
Haswell on this machine, half the AVX-512 kernels' speed): run it under `env -u OPENBLAS_CORETYPE`
to let OpenBLAS pick its kernels, as the driver does. The modules are the ones the pack's graphs
were exported from, at the manifest's sizes, with the export's seeded random init (only shapes
matter for speed; random_init_ keeps activations in range, so no denormals or NaNs).
Items: `matmul` (a chain of sgemms, --matmul-rows × --matmul-dims), `encoder_bB` (B images),
`decoder_cC` / `decoder_bB_cC` (1 or B images, C tags × --descriptions, both outputs), `text` (--text-batch full-context
texts). Each: --warmup untimed calls, then timed calls until --runs are done or --budget seconds
are spent (at least one); median and best reported.
bench/onnx-vs-pytorch.ts drives --serve so that each item runs right after onnxruntime's.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "export"))

DEFAULT_ITEMS = "matmul,encoder_b1,encoder_b4,encoder_b8,decoder_c100,decoder_c1000,decoder_c4585,text"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def chain_dims(a) -> list:
    return [int(v) for v in a.matmul_dims.split(",")]


def chain_flop(rows: int, dims: list) -> int:
    return sum(2 * rows * dims[i] * dims[i + 1] for i in range(len(dims) - 1))


def write_matmul_onnx(out_dir: str, rows: int, dims: list) -> dict:
    """Chained MatMul nodes with constant weights (pre-packed by onnxruntime, as in the pack's
    graphs). A chain rather than one node: a lone node's large output is a fresh allocation per
    run, and faulting in its pages, not the multiply, would be what is measured."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "a"
    for i in range(len(dims) - 1):
        # 1/sqrt(fan-in) keeps values in range along the chain
        w = (rng.standard_normal((dims[i], dims[i + 1]), dtype=np.float32) / np.sqrt(dims[i])).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        y = "c" if i == len(dims) - 2 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [y]))
        x = y
    graph = helper.make_graph(
        nodes,
        "matmul_chain",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["M", dims[0]])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["M", dims[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "matmul_chain.onnx")
    onnx.save(model, path)
    # the same chain through the export tool's int8 rewrite, in each ONNX formulation it offers
    from omnitag_export.quantize import FORMATS, quantize_model
    int8 = {}
    for fmt in FORMATS:
        q = onnx.load(path)
        quantize_model(q, fmt)
        int8[fmt] = os.path.join(out_dir, f"matmul_chain.int8-{fmt}.onnx")
        onnx.save(q, int8[fmt])
    return {"path": path, "rows": rows, "dims": dims, "flop": chain_flop(rows, dims), "int8": int8}


def op_counts(path: str) -> dict:
    """Node count per op type (domain-qualified outside the default domain) of an ONNX file."""
    import collections

    import onnx

    m = onnx.load(path, load_external_data=False)
    return dict(collections.Counter(f"{n.domain}.{n.op_type}" if n.domain else n.op_type for n in m.graph.node))


def blas_core() -> str | None:
    """OpenBLAS's kernel family (Debian's torch calls the system BLAS for Linear/matmul)."""
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            fn = ctypes.CDLL(name).openblas_get_corename
            fn.restype = ctypes.c_char_p
            return fn().decode()
        except (OSError, AttributeError):
            continue
    return None


def malloc_in_use() -> str:
    """Which allocator this process runs on (jemalloc when preloaded)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            return "jemalloc" if "jemalloc" in fh.read() else "glibc"
    except OSError:
        return "unknown"


def timed(fn, runs: int, budget: float, warmup: int) -> dict:
    for _ in range(warmup):  # allocator, oneDNN primitives, BLAS buffers
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < runs and (not times or time.perf_counter() - start < budget):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": len(times)}


class Bench:
    def __init__(self, a):
        import torch

        self.torch, self.a = torch, a
        torch.set_num_threads(a.threads)
        with open(os.path.join(a.pack, "manifest.json"), encoding="utf-8") as fh:
            self.manifest = json.load(fh)
        self.gen = torch.Generator().manual_seed(1)
        self._mods = None
        self._embeds = None

    @property
    def mods(self):
        if self._mods is None:
            from omnitag_export.models import build_modules, dims_from_manifest, random_init_

            t0 = time.perf_counter()
            self._mods = random_init_(build_modules(dims_from_manifest(self.manifest)), seed=0)
            log(f"PyTorch modules built in {time.perf_counter() - t0:.1f} s")
        return self._mods

    def info(self) -> dict:
        return {
            "torch": self.torch.__version__,
            "threads": self.torch.get_num_threads(),
            "blas": blas_core(),
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
            "malloc": malloc_in_use(),
            "pack": self.manifest.get("name"),
            "policy": {"warmup": self.a.warmup, "runs": self.a.runs, "budget_s": self.a.budget},
        }

    def item(self, name: str) -> dict:
        torch, a, gen = self.torch, self.a, self.gen
        with torch.inference_mode():
            if name == "matmul":
                rows, dims = a.matmul_rows, chain_dims(a)
                ws = [torch.randn(dims[i], dims[i + 1], generator=gen) / dims[i] ** 0.5 for i in range(len(dims) - 1)]
                outs = [torch.empty(rows, d) for d in dims[1:]]
                x0 = torch.randn(rows, dims[0], generator=gen)

                def chain():
                    x = x0
                    for w, o in zip(ws, outs):
                        torch.mm(x, w, out=o)  # preallocated: the BLAS alone
                        x = o

                r = timed(chain, a.runs, a.budget, a.warmup)
                flop = chain_flop(rows, dims)
                r["rows"], r["dims"] = rows, dims
                r["gflops_median"] = flop / (r["median_ms"] / 1000) / 1e9
                r["gflops_best"] = flop / (r["min_ms"] / 1000) / 1e9
                return r
            mods = self.mods
            d = mods.dims
            s, e = d.swin.image_size, d.decoder.embed_dim
            if m := re.fullmatch(r"encoder_b(\d+)", name):
                b = int(m[1])
                px = torch.randn(b, 3, s, s, generator=gen)
                r = timed(lambda: mods.image_encoder(px), a.runs, a.budget, a.warmup)
                r["batch"], r["images_per_s"] = b, b / (r["median_ms"] / 1000)
                return r
            if m := re.fullmatch(r"decoder(?:_b(\d+))?_c(\d+)", name):
                b, c = int(m[1] or 1), int(m[2])
                if self._embeds is None:
                    self._embeds = mods.image_encoder(torch.randn(1, 3, s, s, generator=gen))
                emb = self._embeds.expand(b, -1, -1).contiguous()
                lab = torch.randn(c, a.descriptions, e, generator=gen)
                lab = lab / lab.norm(dim=-1, keepdim=True)
                mask = torch.ones(c, a.descriptions, dtype=torch.bool)
                r = timed(lambda: mods.tag_decoder(emb, lab, mask), a.runs, a.budget, a.warmup)
                r["batch"], r["tags"], r["descriptions"] = b, c, a.descriptions
                return r
            if name == "text":
                n, ctx = a.text_batch, d.text.context
                # full-context rows (the end token last), like 77-token LLM descriptions
                ids = torch.randint(1, 49000, (n, ctx), generator=gen)
                ids[:, 0], ids[:, -1] = 49406, 49407
                r = timed(lambda: mods.text_encoder(ids), a.runs, a.budget, a.warmup)
                r["batch"], r["length"], r["texts_per_s"] = n, ctx, n / (r["median_ms"] / 1000)
                return r
        raise ValueError(f"unknown item {name!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default=os.path.join(ROOT, "packs", "full"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per item")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget", type=float, default=10.0, help="seconds of timed calls per item (after the warm-up)")
    ap.add_argument("--items", default=DEFAULT_ITEMS)
    ap.add_argument("--descriptions", type=int, default=51)
    ap.add_argument("--text-batch", type=int, default=64)
    # Swin-L stage 3's MLP shapes at batch 4 (stage 3 holds ~3/4 of the encoder's FLOPs)
    ap.add_argument("--matmul-rows", type=int, default=2304)
    ap.add_argument("--matmul-dims", default="768,3072,768,3072,768,3072,768,3072,768")
    ap.add_argument("--serve", action="store_true", help="read item names from stdin, answer one JSON line each")
    ap.add_argument("--write-matmul-onnx", metavar="DIR")
    ap.add_argument("--op-counts", metavar="ONNX", help="print the graph's node count per op type (JSON)")
    a = ap.parse_args()

    if a.op_counts:
        print(json.dumps(op_counts(a.op_counts)))
        return 0
    if a.write_matmul_onnx:
        print(json.dumps(write_matmul_onnx(a.write_matmul_onnx, a.matmul_rows, chain_dims(a))))
        return 0

    bench = Bench(a)
    if a.serve:
        print(json.dumps({"info": bench.info()}), flush=True)
        for line in sys.stdin:
            name = line.strip()
            if not name:
                continue
            try:
                print(json.dumps({"item": name, "result": bench.item(name)}), flush=True)
            except Exception as exc:  # reported to the driver, which decides
                print(json.dumps({"item": name, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 0

    result = {**bench.info(), "items": {}}
    for name in a.items.split(","):
        result["items"][name] = r = bench.item(name)
        log(f"{name}: {r['median_ms']:.1f} ms (median of {r['runs']})")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
