"""int8 weights for any ONNX graph: every MatMul (or Gemm) whose right operand is a constant
2-D float matrix runs as an integer matmul; everything else (LayerNorm, Softmax, GELU,
attention between activations, the graph's inputs and outputs) stays float32.

Weights: symmetric int8 per output channel (one scale per column of the [K, N] matrix,
range -127..127, zero point 0). Activations: quantised dynamically at run time, per tensor,
to uint8 with a zero point (u8 activations x s8 weights is the x86 VNNI path).

Two formulations, both understood by onnxruntime's CPU provider:
- "matmulinteger" (standard ONNX ops): DynamicQuantizeLinear -> MatMulInteger -> Cast ->
  Mul(by a_scale * w_scale) [-> Add bias]. onnxruntime's graph optimiser fuses this chain
  into its DynamicQuantizeMatMul kernel at its default optimisation level.
- "dynamicquantizematmul": that com.microsoft kernel written directly (onnxruntime only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FORMATS = ("matmulinteger", "dynamicquantizematmul")
DEFAULT_FORMAT = "matmulinteger"
MS_DOMAIN = "com.microsoft"


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] float -> (int8 [K, N], float32 scale [N]) with w ~= q * scale per column."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"expected a 2-D weight, got shape {w.shape}")
    amax = np.max(np.abs(w), axis=0)
    # an all-zero column keeps scale 1: its int8 values are all 0 either way
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


@dataclass
class QuantizeStats:
    matmuls: int = 0
    gemms: int = 0
    skipped: list = field(default_factory=list)
    float_weight_bytes: int = 0
    int8_weight_bytes: int = 0
    max_weight_error: float = 0.0  # worst |w - q*scale| / scale, in units of one step (<= 0.5)

    def as_dict(self) -> dict:
        return {"matmuls": self.matmuls, "gemms": self.gemms, "skipped": len(self.skipped),
                "floatWeightBytes": self.float_weight_bytes, "int8WeightBytes": self.int8_weight_bytes}


class _Graph:
    """Lookup helpers over one graph: constants, consumers, fresh names."""

    def __init__(self, graph: onnx.GraphProto):
        self.g = graph
        self.inits = {t.name: t for t in graph.initializer}
        self.const_nodes = {n.output[0]: n for n in graph.node
                            if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value"}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in graph.output}
        self.used = {t.name for t in graph.initializer} | {n.name for n in graph.node}
        for n in graph.node:
            self.used.update(n.output)
        self.used.update(i.name for i in graph.input)

    def const(self, name: str):
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        if name in self.const_nodes:
            return numpy_helper.to_array(self.const_nodes[name].attribute[0].t)
        return None

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def add_init(self, base: str, arr: np.ndarray) -> str:
        name = self.fresh(base)
        self.g.initializer.append(numpy_helper.from_array(arr, name))
        return name


def _bias_add(gr: _Graph, out: str, n_cols: int):
    """The Add that follows a matmul with a constant [N] bias, when it is the output's only use."""
    users = gr.consumers.get(out, [])
    if len(users) != 1 or out in gr.outputs or users[0].op_type != "Add":
        return None, None
    add = users[0]
    other = add.input[1] if add.input[0] == out else add.input[0]
    b = gr.const(other)
    if b is None or b.dtype != np.float32 or b.shape != (n_cols,):
        return None, None
    return add, b


def quantize_model(model: onnx.ModelProto, fmt: str = DEFAULT_FORMAT, min_weight_elements: int = 0,
                   fold_bias: bool = True) -> QuantizeStats:
    """Rewrites `model` in place (top-level graph). Returns what was done."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown int8 format {fmt!r} (one of {', '.join(FORMATS)})")
    g = model.graph
    gr = _Graph(g)
    stats = QuantizeStats()
    new_nodes: list = []
    dropped: set[int] = set()  # ids of nodes replaced (bias Adds folded into the fused op)
    replaced_weights: set[str] = set()

    for node in list(g.node):
        if id(node) in dropped:
            continue
        w = None
        if node.op_type == "MatMul":
            w = gr.const(node.input[1])
            if gr.const(node.input[0]) is not None:
                w = None
        elif node.op_type == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            w = gr.const(node.input[1])
            if attrs.get("transA", 0) or gr.const(node.input[0]) is not None:
                w = None
            elif w is not None:
                w = (w.T if attrs.get("transB", 0) else w) * np.float32(attrs.get("alpha", 1.0))
        if w is None or w.dtype != np.float32 or w.ndim != 2 or w.size < min_weight_elements:
            if node.op_type in ("MatMul", "Gemm") and w is not None:
                stats.skipped.append(node.name)
            new_nodes.append(node)
            continue

        k, n_cols = w.shape
        q, scale = quantize_weight(w)
        err = np.max(np.abs(w - q.astype(np.float32) * scale) / scale) if w.size else 0.0
        stats.max_weight_error = max(stats.max_weight_error, float(err))
        stats.float_weight_bytes += w.size * 4
        stats.int8_weight_bytes += q.size + scale.size * 4
        base = node.name or node.output[0]
        x, y = node.input[0], node.output[0]
        if node.op_type == "Gemm":
            stats.gemms += 1
            bias = None
            if len(node.input) > 2 and node.input[2]:
                c = gr.const(node.input[2])
                beta = np.float32({a.name: helper.get_attribute_value(a) for a in node.attribute}.get("beta", 1.0))
                bias = None if c is None else (c * beta).astype(np.float32).reshape(-1)
                if bias is None or bias.shape != (n_cols,):
                    stats.skipped.append(node.name)
                    stats.gemms -= 1
                    new_nodes.append(node)
                    continue
            add = None
        else:
            stats.matmuls += 1
            add, bias = _bias_add(gr, y, n_cols) if fold_bias else (None, None)
            if add is not None:
                dropped.add(id(add))
                y = add.output[0]
        replaced_weights.add(node.input[1])
        q_name = gr.add_init(base + "_w_int8", q)
        s_name = gr.add_init(base + "_w_scale", scale)
        b_name = gr.add_init(base + "_bias", bias) if bias is not None else None

        if fmt == "dynamicquantizematmul":
            zp = gr.add_init(base + "_w_zero", np.zeros(n_cols, np.int8))
            ins = [x, q_name, s_name, zp] + ([b_name] if b_name else [])
            new_nodes.append(helper.make_node("DynamicQuantizeMatMul", ins, [y], name=gr.fresh(base + "_int8"),
                                              domain=MS_DOMAIN))
            continue
        xq, xs, xz = gr.fresh(base + "_x_u8"), gr.fresh(base + "_x_scale"), gr.fresh(base + "_x_zero")
        acc, accf = gr.fresh(base + "_acc_i32"), gr.fresh(base + "_acc_f32")
        sc, prod = gr.fresh(base + "_scale"), gr.fresh(base + "_scaled")
        new_nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [xq, xs, xz], name=gr.fresh(base + "_quant")),
            helper.make_node("MatMulInteger", [xq, q_name, xz], [acc], name=gr.fresh(base + "_mmi")),
            helper.make_node("Cast", [acc], [accf], to=TensorProto.FLOAT, name=gr.fresh(base + "_cast")),
            helper.make_node("Mul", [xs, s_name], [sc], name=gr.fresh(base + "_scale_mul")),
            helper.make_node("Mul", [accf, sc], [prod if b_name else y], name=gr.fresh(base + "_rescale")),
        ]
        if b_name:
            new_nodes.append(helper.make_node("Add", [prod, b_name], [y], name=gr.fresh(base + "_bias_add")))

    del g.node[:]
    g.node.extend(new_nodes)
    # float weights no longer read by any node go away
    still_used = {i for n in g.node for i in n.input} | gr.outputs
    keep = [t for t in g.initializer if t.name in still_used or t.name not in replaced_weights]
    del g.initializer[:]
    g.initializer.extend(keep)
    keep_nodes = [n for n in g.node if not (n.op_type == "Constant" and n.output[0] in replaced_weights
                                             and n.output[0] not in still_used)]
    del g.node[:]
    g.node.extend(keep_nodes)
    del g.value_info[:]
    if fmt == "dynamicquantizematmul" and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return stats


# ----------------------------------------------------------------------------- packs

FLOAT_DIR = ".float32"  # float32 originals kept beside the int8 graphs until verification is done
QUANTIZED_GRAPHS = ("image_encoder.onnx", "tag_decoder.onnx")
# Self-test bound of an int8 pack when no measurement was made (--no-verify); a verified export
# records twice the measured deviation instead, never less than the floor.
INT8_SELFTEST_TOLERANCE = 0.5
INT8_SELFTEST_FLOOR = 0.02


def selftest_tolerance(measured: float) -> float:
    """2x the measured self-test deviation, rounded up to two significant digits, at least the floor."""
    t = max(INT8_SELFTEST_FLOOR, 2.0 * measured)
    e = np.floor(np.log10(t)) - 1
    return float(np.ceil(t / 10 ** e) * 10 ** e)


def quantize_pack_graphs(out_dir: str, graphs: dict, fmt: str = DEFAULT_FORMAT, external: str = "auto") -> dict:
    """Replaces the image encoder and tag decoder (and the heat-map decoder, if any) in out_dir
    with int8 versions; the float32
    files move to out_dir/.float32 (for the drift measurement). Updates `graphs` (file lists);
    returns the manifest's `quantization` entry. The text encoder stays float32: it runs once
    per new description (cached), not per image."""
    import os

    from .onnx_export import HEATMAP_GRAPH, save_proto

    float_dir = os.path.join(out_dir, FLOAT_DIR)
    os.makedirs(float_dir, exist_ok=True)
    done = {}
    # the heat-map decoder too, where there is one: its maps come from the scoring weights
    for fname in [g for g in (*QUANTIZED_GRAPHS, HEATMAP_GRAPH) if g in graphs]:
        for f in graphs[fname]:
            os.replace(os.path.join(out_dir, f), os.path.join(float_dir, f))
        proto = onnx.load(os.path.join(float_dir, fname))
        stats = quantize_model(proto, fmt)
        graphs[fname] = save_proto(proto, os.path.join(out_dir, fname), external)
        done[fname] = stats.as_dict()
        del proto
    # the text encoder too (unchanged), so that the folder is a complete float32 graph set
    for f in graphs["text_encoder.onnx"]:
        try:
            os.link(os.path.join(out_dir, f), os.path.join(float_dir, f))
        except OSError:
            import shutil
            shutil.copyfile(os.path.join(out_dir, f), os.path.join(float_dir, f))
    return {
        "method": "dynamic",
        "weights": "int8, symmetric, one scale per output channel",
        "activations": "uint8 per tensor, scale and zero point computed at run time from each input (dynamic)",
        "format": fmt,
        "graphs": done,
        "float32Graphs": ["text_encoder.onnx"],
        "float32Ops": "everything but matmuls with constant weights (LayerNorm, Softmax, GELU, attention)",
        "selftestTolerance": INT8_SELFTEST_TOLERANCE,
    }
