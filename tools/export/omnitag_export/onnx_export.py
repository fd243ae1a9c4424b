"""ONNX export of the three graphs (fp32, or fp16 inside with fp32 inputs and outputs)."""
from __future__ import annotations

import io
import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from .models import HeatmapTagDecoder, Modules

OPSET = 17
TWO_GB = 2 * 1024 ** 3


def _fp16_tensor(t: onnx.TensorProto) -> onnx.TensorProto:
    a = numpy_helper.to_array(t).astype(np.float32)
    a = np.clip(a, -65504, 65504).astype(np.float16) if np.all(np.isfinite(a)) else a.astype(np.float16)
    return numpy_helper.from_array(a, t.name)


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """float32 graph -> float16 graph whose float inputs and outputs stay float32.

    (Tracing in half precision is not possible on CPU with torch 1.13, so the conversion
    is done on the ONNX graph: weights, constants and casts become float16, and Casts
    are added at the graph's edges.)
    """
    g = proto.graph
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16

    def convert(graph, sub: bool):
        for i, t in enumerate(graph.initializer):
            if t.data_type == f32:
                graph.initializer[i].CopyFrom(_fp16_tensor(t))
        for n in graph.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == f32:
                    a.t.CopyFrom(_fp16_tensor(a.t))
                if n.op_type == "Cast" and a.name == "to" and a.i == f32:
                    a.i = f16
                if a.type == onnx.AttributeProto.GRAPH:
                    convert(a.g, True)
        if sub:
            for o in graph.output:
                if o.type.tensor_type.elem_type == f32:
                    o.type.tensor_type.elem_type = f16
            del graph.value_info[:]

    def rename(old: str, new: str):
        for n in g.node:
            for names in (n.input, n.output):
                for j, x in enumerate(names):
                    if x == old:
                        names[j] = new

    convert(g, False)
    new_nodes = []
    for inp in g.input:
        if inp.type.tensor_type.elem_type == f32:
            rename(inp.name, inp.name + "_fp16")
            new_nodes.append(onnx.helper.make_node("Cast", [inp.name], [inp.name + "_fp16"], to=f16, name="cast_in_" + inp.name))
    tail = []
    for out in g.output:
        if out.type.tensor_type.elem_type == f32:
            rename(out.name, out.name + "_fp16")
            tail.append(onnx.helper.make_node("Cast", [out.name + "_fp16"], [out.name], to=f32, name="cast_out_" + out.name))
    nodes = new_nodes + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return proto


def _dummy(mods: Modules):
    d = mods.dims
    s, e = d.swin.image_size, d.decoder.embed_dim
    g = torch.Generator().manual_seed(0)
    pix = torch.randn(2, 3, s, s, generator=g)
    emb = torch.randn(2, d.image_tokens, e, generator=g)
    lab = torch.randn(3, 4, e, generator=g)
    mask = torch.ones(3, 4, dtype=torch.bool)
    ids = torch.zeros(3, d.text.context, dtype=torch.long)
    ids[:, 0], ids[:, 1], ids[:, 2] = 49406, 320, 49407
    return pix, emb, lab, mask, ids


def _to_proto(module: nn.Module, args: tuple, inputs, outputs, axes) -> onnx.ModelProto:
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, buf, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def _constants_to_initializers(graph, min_bytes: int = 256) -> None:
    """Large Constant nodes become initializers, so that they can move to external data too."""
    keep = []
    for n in graph.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value" \
                and len(n.attribute[0].t.raw_data) >= min_bytes:
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            graph.initializer.append(t)
        else:
            keep.append(n)
    del graph.node[:]
    graph.node.extend(keep)


def save_proto(proto: onnx.ModelProto, path: str, external: str = "auto") -> list:
    """Writes the graph; weights go to '<name>.data' beside it when asked or when over 2 GB.
    Returns the file names written (relative to the graph's folder)."""
    name = os.path.basename(path)
    big = proto.ByteSize() >= TWO_GB - 64 * 1024 ** 2 if external == "auto" else external == "always"
    if big:
        _constants_to_initializers(proto.graph)
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=name + ".data", size_threshold=0)
        return [name, name + ".data"]
    with open(path, "wb") as fh:
        fh.write(proto.SerializeToString())
    return [name]


HEATMAP_GRAPH = "tag_decoder_heatmaps.onnx"
HEATMAP_OUTPUT = "cross_attention"


def export_graphs(mods: Modules, out_dir: str, fp16: bool = False, external: str = "auto",
                  heatmaps: bool = False) -> dict:
    """Writes image_encoder.onnx, tag_decoder.onnx, text_encoder.onnx (and with `heatmaps` the
    second decoder graph, tag_decoder_heatmaps.onnx); returns {graph: [files]}.

    The heat-map graph is a separate file rather than a third output of tag_decoder.onnx:
    tag_decoder.onnx stays byte for byte what it is without heat maps (so its logits cannot
    change), and a server that is not asked for maps never runs or loads the extra graph."""
    pix, emb, lab, mask, ids = _dummy(mods)
    specs = [
        ("image_encoder.onnx", mods.image_encoder, (pix,), ["pixel_values"], ["image_embeds"],
         {"pixel_values": {0: "B"}, "image_embeds": {0: "B"}}),
        ("tag_decoder.onnx", mods.tag_decoder, (emb, lab, mask), ["image_embeds", "label_embeds", "label_mask"],
         ["logits", "description_weights"],
         {"image_embeds": {0: "B"}, "label_embeds": {0: "C", 1: "D"}, "label_mask": {0: "C", 1: "D"},
          "logits": {0: "B", 1: "C"}, "description_weights": {0: "B", 1: "C", 2: "D"}}),
        ("text_encoder.onnx", mods.text_encoder, (ids,), ["input_ids"], ["text_embeds"],
         {"input_ids": {0: "N", 1: "L"}, "text_embeds": {0: "N"}}),
    ]
    if heatmaps:
        specs.insert(2, (HEATMAP_GRAPH, HeatmapTagDecoder(mods.tag_decoder), (emb, lab, mask),
                         ["image_embeds", "label_embeds", "label_mask"],
                         ["logits", "description_weights", HEATMAP_OUTPUT],
                         {"image_embeds": {0: "B"}, "label_embeds": {0: "C", 1: "D"}, "label_mask": {0: "C", 1: "D"},
                          "logits": {0: "B", 1: "C"}, "description_weights": {0: "B", 1: "C", 2: "D"},
                          HEATMAP_OUTPUT: {0: "B", 1: "C"}}))
    written = {}
    for fname, module, args, ins, outs, axes in specs:
        proto = _to_proto(module.eval(), args, ins, outs, axes)
        if fp16:
            proto = to_fp16(proto)
        proto.producer_name = "omnitag-export"
        proto.doc_string = ""
        written[fname] = save_proto(proto, os.path.join(out_dir, fname), external)
        del proto
    return written


def check_graphs(out_dir: str, names) -> None:
    for n in names:
        onnx.checker.check_model(os.path.join(out_dir, n), full_check=False)
