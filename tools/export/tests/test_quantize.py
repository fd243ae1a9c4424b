"""The int8 rewrite (omnitag_export.quantize): per-column weight scales, the rewritten graph
computes the float result within the quantisation error, only constant-weight matmuls change,
and the int8 export of the tiny pack is complete and carries its drift report."""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np

from _common import MERGES, RAM_DATA, SHARED, need_regex, need_shared, need_torch

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except Exception:  # noqa: BLE001
    onnx = None


def _dql(x):
    """ONNX DynamicQuantizeLinear: uint8, range widened to include 0, zero point rounded half to even."""
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    zp = np.uint8(np.clip(np.rint(-lo / scale), 0, 255))
    q = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    return q, scale, zp


def run_numpy(model, feeds: dict) -> dict:
    """A small evaluator for the ops these tests' graphs use (Python has no onnxruntime here)."""
    env = dict(feeds)
    for t in model.graph.initializer:
        env[t.name] = numpy_helper.to_array(t)
    for n in model.graph.node:
        i = [env[x] if x else None for x in n.input]
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        op = n.op_type
        if op == "Constant":
            out = [numpy_helper.to_array(attrs["value"])]
        elif op == "MatMul":
            out = [np.matmul(i[0], i[1])]
        elif op == "Gemm":
            a = i[0].T if attrs.get("transA", 0) else i[0]
            b = i[1].T if attrs.get("transB", 0) else i[1]
            y = attrs.get("alpha", 1.0) * (a @ b)
            out = [y + attrs.get("beta", 1.0) * i[2] if len(i) > 2 and i[2] is not None else y]
        elif op == "Add":
            out = [i[0] + i[1]]
        elif op == "Mul":
            out = [i[0] * i[1]]
        elif op == "Relu":
            out = [np.maximum(i[0], 0)]
        elif op == "Transpose":
            out = [np.transpose(i[0], attrs.get("perm"))]
        elif op == "Cast":
            out = [i[0].astype({TensorProto.FLOAT: np.float32}[attrs["to"]])]
        elif op == "DynamicQuantizeLinear":
            out = list(_dql(i[0]))
        elif op == "MatMulInteger":
            a = i[0].astype(np.int32) - (np.int32(i[2]) if len(i) > 2 and i[2] is not None else 0)
            b = i[1].astype(np.int32) - (i[3].astype(np.int32) if len(i) > 3 and i[3] is not None else 0)
            out = [np.matmul(a, b).astype(np.int32)]
        else:
            raise NotImplementedError(op)
        for name, v in zip(n.output, out):
            env[name] = v
    return {o.name: env[o.name] for o in model.graph.output}


def quant_bound(x, w):
    """Worst |int8 result - float result| the scheme allows for x @ w: each product's error with
    x off by at most s_x/2 and w off by at most s_w[n]/2 (plus the cross term)."""
    _, sx, _ = _dql(x)
    sw = np.max(np.abs(w), axis=0) / 127.0
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    return ax @ (np.ones_like(aw) * sw / 2) + (sx / 2) * aw.sum(0) + w.shape[0] * sx * sw / 4 + 1e-5


def linear_model(x_shape, w, bias=None, gemm=None):
    """x @ w (+ bias) as MatMul(+Add), or as Gemm with the given attributes, then Relu, then an
    activation x activation MatMul (which must stay float)."""
    k, n = w.shape
    inits = []
    nodes = []
    if gemm is not None:
        wt = w.T.copy() if gemm.get("transB") else w
        alpha = gemm.get("alpha", 1.0)
        inits.append(numpy_helper.from_array((wt / alpha).astype(np.float32), "W"))
        ins = ["x", "W"]
        if bias is not None:
            inits.append(numpy_helper.from_array((bias / gemm.get("beta", 1.0)).astype(np.float32), "B"))
            ins.append("B")
        nodes.append(helper.make_node("Gemm", ins, ["y"], name="fc", **gemm))
    else:
        inits.append(numpy_helper.from_array(w, "W"))
        nodes.append(helper.make_node("MatMul", ["x", "W"], ["mm" if bias is not None else "y"], name="fc"))
        if bias is not None:
            inits.append(numpy_helper.from_array(bias, "B"))
            nodes.append(helper.make_node("Add", ["mm", "B"], ["y"], name="fc_bias"))
    nodes.append(helper.make_node("Relu", ["y"], ["r"]))
    nodes.append(helper.make_node("Transpose", ["r"], ["rt"], perm=[1, 0] if len(x_shape) == 2 else [0, 2, 1]))
    nodes.append(helper.make_node("MatMul", ["r", "rt"], ["gram"], name="activation_product"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x_shape[:-1]) + [n]),
                               helper.make_tensor_value_info("gram", TensorProto.FLOAT,
                                                             list(x_shape[:-1]) + [x_shape[-2]])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@unittest.skipIf(onnx is None, "onnx is not importable (Debian: python3-onnx)")
class TestQuantizeWeight(unittest.TestCase):
    def test_one_symmetric_scale_per_output_column(self):
        from omnitag_export.quantize import quantize_weight
        rng = np.random.default_rng(0)
        # columns a thousand times apart: one scale for the matrix would zero the small ones
        w = (rng.standard_normal((64, 5)) * np.array([1e-3, 1e-2, 1, 10, 100])).astype(np.float32)
        q, s = quantize_weight(w)
        self.assertEqual(q.dtype, np.int8)
        self.assertEqual(s.shape, (5,))
        np.testing.assert_allclose(s, np.abs(w).max(0) / 127, rtol=1e-6)
        self.assertEqual(int(np.abs(q).max()), 127)
        self.assertTrue(np.all(np.abs(q.astype(int)).max(0) == 127), "every column uses its full range")
        self.assertTrue(np.all(np.abs(w - q * s) <= s / 2 + 1e-7 * np.abs(w)))

    def test_zero_column_keeps_a_usable_scale(self):
        from omnitag_export.quantize import quantize_weight
        w = np.zeros((4, 2), np.float32)
        w[:, 1] = [1, -2, 3, -4]
        q, s = quantize_weight(w)
        self.assertEqual(s[0], 1.0)
        self.assertTrue(np.all(q[:, 0] == 0))
        np.testing.assert_array_equal(q[:, 1], [32, -64, 95, -127])


@unittest.skipIf(onnx is None, "onnx is not importable (Debian: python3-onnx)")
class TestQuantizeModel(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(1)

    def check(self, x, w, bias=None, gemm=None, fmt="matmulinteger"):
        from omnitag_export.quantize import quantize_model
        m = linear_model(x.shape, w, bias, gemm)
        ref = run_numpy(m, {"x": x})
        stats = quantize_model(m, fmt)
        onnx.checker.check_model(m)
        ops = [n.op_type for n in m.graph.node]
        self.assertNotIn("Gemm", ops)
        self.assertEqual(ops.count("MatMul"), 1, "the activation x activation product stays a float MatMul")
        self.assertEqual([i.name for i in m.graph.input], ["x"])
        self.assertEqual([o.name for o in m.graph.output], ["y", "gram"])
        self.assertNotIn("W", {t.name for t in m.graph.initializer}, "the float weight is gone")
        return m, ref, stats

    def test_matmul_with_bias_within_the_quantisation_error(self):
        x = self.rng.standard_normal((2, 7, 48)).astype(np.float32)
        w = (self.rng.standard_normal((48, 24)) * np.linspace(0.01, 3, 24)).astype(np.float32)
        b = self.rng.standard_normal(24).astype(np.float32)
        m, ref, stats = self.check(x, w, b)
        self.assertEqual((stats.matmuls, stats.gemms), (1, 0))
        got = run_numpy(m, {"x": x})
        err = np.abs(got["y"] - ref["y"])
        self.assertTrue(np.all(err <= quant_bound(x.reshape(-1, 48), w).reshape(err.shape)))
        self.assertGreater(err.max(), 0, "the result is really quantised")
        ops = [n.op_type for n in m.graph.node]
        self.assertEqual(ops[:6], ["DynamicQuantizeLinear", "MatMulInteger", "Cast", "Mul", "Mul", "Add"])
        scale = next(numpy_helper.to_array(t) for t in m.graph.initializer if t.name.endswith("_w_scale"))
        np.testing.assert_allclose(scale, np.abs(w).max(0) / 127, rtol=1e-6)

    def test_gemm_with_transposed_weight_alpha_and_beta(self):
        x = self.rng.standard_normal((5, 32)).astype(np.float32)
        w = self.rng.standard_normal((32, 16)).astype(np.float32)
        b = self.rng.standard_normal(16).astype(np.float32)
        m, ref, stats = self.check(x, w, b, gemm={"transB": 1, "alpha": 0.5, "beta": 2.0})
        self.assertEqual((stats.matmuls, stats.gemms), (0, 1))
        got = run_numpy(m, {"x": x})
        self.assertTrue(np.all(np.abs(got["y"] - ref["y"]) <= quant_bound(x, w)))

    def test_weight_from_a_constant_node(self):
        from omnitag_export.quantize import quantize_model
        x = self.rng.standard_normal((3, 8)).astype(np.float32)
        w = self.rng.standard_normal((8, 4)).astype(np.float32)
        m = linear_model(x.shape, w)
        del m.graph.initializer[:]
        m.graph.node.insert(0, helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(w, "W")))
        ref = run_numpy(m, {"x": x})
        self.assertEqual(quantize_model(m).matmuls, 1)
        self.assertNotIn("Constant", [n.op_type for n in m.graph.node])
        self.assertTrue(np.all(np.abs(run_numpy(m, {"x": x})["y"] - ref["y"]) <= quant_bound(x, w)))

    def test_com_microsoft_formulation(self):
        from omnitag_export.quantize import MS_DOMAIN, quantize_model
        m = linear_model((3, 8), self.rng.standard_normal((8, 4)).astype(np.float32),
                         self.rng.standard_normal(4).astype(np.float32))
        quantize_model(m, "dynamicquantizematmul")
        fused = [n for n in m.graph.node if n.op_type == "DynamicQuantizeMatMul"]
        self.assertEqual(len(fused), 1)
        self.assertEqual(fused[0].domain, MS_DOMAIN)
        self.assertEqual(len(fused[0].input), 5, "the bias is folded in")
        self.assertNotIn("Add", [n.op_type for n in m.graph.node])
        self.assertIn(MS_DOMAIN, [o.domain for o in m.opset_import])

    def test_onnxruntime_agrees_with_the_scheme(self):
        """The same graphs through onnxruntime-node: within the same bound of the float result."""
        from omnitag_export.quantize import FORMATS, quantize_model
        from omnitag_export.verify import OnnxRunner
        x = self.rng.standard_normal((4, 6, 64)).astype(np.float32)
        w = (self.rng.standard_normal((64, 32)) * np.linspace(0.05, 2, 32)).astype(np.float32)
        b = self.rng.standard_normal(32).astype(np.float32)
        tmp = tempfile.mkdtemp(prefix="omnitag-q-")
        try:
            ref = run_numpy(linear_model(x.shape, w, b), {"x": x})["y"]
            r = OnnxRunner(tmp)
            for fmt in FORMATS:
                m = linear_model(x.shape, w, b)
                quantize_model(m, fmt)
                onnx.save(m, os.path.join(tmp, f"{fmt}.onnx"))
                r.add(f"{fmt}.onnx", {"x": x}, ["y"])
            got = r.execute()
            r.close()
            if got is None:
                self.skipTest(f"onnxruntime-node unavailable: {r.skipped_reason}")
            bound = quant_bound(x.reshape(-1, 64), w).reshape(ref.shape)
            for fmt, g in zip(FORMATS, got):
                self.assertTrue(np.all(np.abs(g["y"] - ref) <= bound), fmt)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_selftest_tolerance_rounds_up_from_the_measurement(self):
        from omnitag_export.quantize import INT8_SELFTEST_FLOOR, selftest_tolerance
        self.assertEqual(selftest_tolerance(0.1696), 0.34)
        self.assertEqual(selftest_tolerance(0.0), INT8_SELFTEST_FLOOR)
        self.assertGreaterEqual(selftest_tolerance(0.0123), 0.0246)


@need_torch
@need_regex
@need_shared(MERGES, RAM_DATA, os.path.join(SHARED, "data", "images"))
class TestInt8TinyExport(unittest.TestCase):
    """Bound on the tiny pack's drift (tiny widths quantise worse than the full model's):
    embedding cosine >= 0.998, logit Pearson r >= 0.99, max |logit diff| <= 0.5,
    mean Jaccard of the passed tag sets >= 0.85 (docs/export.md)."""

    def test_export_writes_a_complete_int8_pack_with_its_drift_report(self):
        import contextlib
        import io
        from omnitag_export.cli import main
        from omnitag_export.pack import sha256_file
        tmp = tempfile.mkdtemp(prefix="omnitag-int8-")
        try:
            out = os.path.join(tmp, "tiny-int8")
            log = io.StringIO()
            with contextlib.redirect_stdout(log):
                rc = main(["--random-init", "tiny", "--quantize", "int8", "--out", out, "--bpe", MERGES,
                           "--ram-dir", RAM_DATA, "--report", os.path.join(tmp, "report.json")])
            self.assertEqual(rc, 0, log.getvalue())
            if "SKIPPED" in log.getvalue():
                self.skipTest("onnxruntime-node unavailable: no drift measured")
            with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
                man = json.load(fh)
            self.assertEqual(man["precision"], "int8")
            q = man["quantization"]
            self.assertEqual(q["method"], "dynamic")
            self.assertGreater(q["graphs"]["image_encoder.onnx"]["matmuls"], 0)
            self.assertGreater(q["graphs"]["tag_decoder.onnx"]["matmuls"], 0)
            on_disk = {os.path.relpath(os.path.join(r, f), out).replace(os.sep, "/")
                       for r, _, fs in os.walk(out) for f in fs} - {"manifest.json"}
            self.assertEqual(on_disk, set(man["files"]), "no float32 leftovers, every file listed")
            for rel, info in man["files"].items():
                self.assertEqual(sha256_file(os.path.join(out, rel)), info["sha256"], rel)
            for g in ("image_encoder.onnx", "tag_decoder.onnx"):
                ops = {n.op_type for n in onnx.load(os.path.join(out, g)).graph.node}
                self.assertIn("MatMulInteger", ops, g)
            with open(os.path.join(out, "selftest.json"), encoding="utf-8") as fh:
                st = json.load(fh)
            self.assertEqual(st["tolerance"], q["selftestTolerance"])
            self.assertEqual(st["textEmbedsTolerance"], 1e-4)
            d = q["drift"]
            self.assertEqual(len(d["images"]), 4)
            self.assertEqual(d["tags"], 4585)
            self.assertGreaterEqual(d["imageEmbeddingCosine"]["min"], 0.998)
            self.assertGreaterEqual(d["logitPearson"]["min"], 0.99)
            self.assertLessEqual(d["logitAbsDiff"]["max"], 0.5)
            self.assertGreater(d["logitAbsDiff"]["max"], 0, "int8 really differs from float32")
            self.assertGreaterEqual(d["passedTags"]["jaccardMean"], 0.85)
            self.assertGreater(d["passedTags"]["float32"], 0, "some tags pass, so agreement means something")
            self.assertLessEqual(d["selftestMaxAbsDiff"], q["selftestTolerance"])
            self.assertIn("Pearson r over all tags", log.getvalue())
            with open(os.path.join(tmp, "report.json"), encoding="utf-8") as fh:
                self.assertEqual(json.load(fh)["int8Drift"]["logitAbsDiff"], d["logitAbsDiff"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_fp16_and_int8_exclude_each_other(self):
        import contextlib
        import io
        from omnitag_export.cli import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(["--random-init", "tiny", "--quantize", "int8", "--fp16", "--out",
                       os.path.join(tempfile.gettempdir(), "omnitag-never-written")])
        self.assertEqual(rc, 2)
        self.assertIn("exclude each other", err.getvalue())


if __name__ == "__main__":
    unittest.main()
