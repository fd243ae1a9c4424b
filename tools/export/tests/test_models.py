"""Module-level facts: Swin's single-window rule, the re-weighting, fp16 graph edges."""
import os
import tempfile
import unittest

from _common import need_torch


@need_torch
class TestSwin(unittest.TestCase):
    def test_single_window_stage_runs_unshifted(self):
        from omnitag_export.models import SwinBlock, full_dims, stage_resolutions
        self.assertEqual(stage_resolutions(full_dims().swin), [96, 48, 24, 12])
        b = SwinBlock(dim=8, res=12, heads=1, window=12, shifted=True, mlp_ratio=1.0)
        self.assertEqual((b.window, b.shift), (12, 0))
        self.assertIsNone(b.attn_mask)
        b = SwinBlock(dim=8, res=6, heads=1, window=7, shifted=True, mlp_ratio=1.0)
        self.assertEqual((b.window, b.shift), (6, 0))
        b = SwinBlock(dim=8, res=24, heads=1, window=12, shifted=True, mlp_ratio=1.0)
        self.assertEqual((b.window, b.shift), (12, 6))
        self.assertEqual(tuple(b.attn_mask.shape), (4, 144, 144))

    def test_tiny_dims_cover_both_cases(self):
        from omnitag_export.models import build_modules, tiny_dims
        mods = build_modules(tiny_dims())
        stages = mods.image_encoder.visual_encoder.layers
        shifts = [[blk.shift for blk in st.blocks] for st in stages]
        self.assertTrue(all(s[1] > 0 for s in shifts[:-1]), shifts)
        self.assertEqual(shifts[-1], [0, 0])
        self.assertEqual(stages[-1].blocks[0].window, stages[-1].blocks[0].res)


def upstream_reweight(g, label_embed, scale):
    """The re-weighting as upstream writes it (a loop over the batch, product then sum)."""
    import torch
    c, d, e = label_embed.shape
    g = g / g.norm(dim=-1, keepdim=True)
    logits = (scale * g @ label_embed.reshape(-1, e).t()).view(g.shape[0], -1, d)
    w = torch.softmax(logits, dim=2)
    q = torch.empty(g.shape[0], c, e)
    for i in range(g.shape[0]):
        q[i] = (w[i].unsqueeze(-1) * label_embed).sum(dim=1)
    return w, q


@need_torch
class TestReweighting(unittest.TestCase):
    def setUp(self):
        import torch
        from omnitag_export.models import build_modules, random_init_, tiny_dims
        self.torch = torch
        self.mods = random_init_(build_modules(tiny_dims()), 3)
        g = torch.Generator().manual_seed(5)
        self.emb = torch.randn(3, self.mods.dims.image_tokens, 64, generator=g)
        le = torch.randn(7, 4, 64, generator=g)
        self.le = le / le.norm(dim=-1, keepdim=True)

    def test_equal_d_all_true_equals_upstream(self):
        torch = self.torch
        dec = self.mods.tag_decoder
        with torch.no_grad():
            logits, w = dec(self.emb, self.le, torch.ones(7, 4, dtype=torch.bool))
            w_ref, q_ref = upstream_reweight(self.emb[:, 0], self.le, dec.reweight_scale.exp())
            x = torch.relu(dec.wordvec_proj(q_ref))
            ref_logits = dec.fc(dec.tagging_head(x, self.emb)).squeeze(-1)
        self.assertLess((w - w_ref).abs().max().item(), 1e-6)
        self.assertLess((logits - ref_logits).abs().max().item(), 1e-5)

    def test_padding_is_excluded(self):
        torch = self.torch
        dec = self.mods.tag_decoder
        counts = [4, 1, 2, 3, 4, 2, 1]
        mask = torch.arange(4)[None, :] < torch.tensor(counts)[:, None]
        padded = self.le.clone()
        padded[~mask] = 0
        with torch.no_grad():
            logits, w = dec(self.emb, padded, mask)
            self.assertEqual(float(w[:, ~mask].abs().max()), 0.0)
            for c, n in enumerate(counts):
                one, w1 = dec(self.emb, self.le[c:c + 1, :n], torch.ones(1, n, dtype=torch.bool))
                self.assertLess((one[:, 0] - logits[:, c]).abs().max().item(), 1e-5)
                self.assertLess((w1[:, 0] - w[:, c, :n]).abs().max().item(), 1e-6)

    def test_tags_are_independent(self):
        torch = self.torch
        dec = self.mods.tag_decoder
        with torch.no_grad():
            all_logits, _ = dec(self.emb, self.le, torch.ones(7, 4, dtype=torch.bool))
            sub, _ = dec(self.emb, self.le[2:5], torch.ones(3, 4, dtype=torch.bool))
        self.assertLess((all_logits[:, 2:5] - sub).abs().max().item(), 1e-5)


@need_torch
class TestFp16Graph(unittest.TestCase):
    def test_inputs_and_outputs_stay_float32(self):
        import onnx
        from omnitag_export.models import build_modules, random_init_, tiny_dims
        from omnitag_export.onnx_export import export_graphs
        mods = random_init_(build_modules(tiny_dims()), 0)
        with tempfile.TemporaryDirectory() as tmp:
            export_graphs(mods, tmp, fp16=True)
            for name in ("image_encoder.onnx", "tag_decoder.onnx", "text_encoder.onnx"):
                m = onnx.load(os.path.join(tmp, name))
                onnx.checker.check_model(m)
                types = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)}
                for v, t in types.items():
                    self.assertIn(t, (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL), v)
                f16 = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
                f32 = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
                self.assertGreater(len(f16), 0)
                self.assertEqual(f32, [])

    def test_external_data(self):
        from omnitag_export.models import build_modules, random_init_, tiny_dims
        from omnitag_export.onnx_export import export_graphs
        import onnx
        mods = random_init_(build_modules(tiny_dims()), 0)
        with tempfile.TemporaryDirectory() as tmp:
            files = export_graphs(mods, tmp, external="always")
            self.assertEqual(files["image_encoder.onnx"], ["image_encoder.onnx", "image_encoder.onnx.data"])
            graph = os.path.getsize(os.path.join(tmp, "image_encoder.onnx"))
            data = os.path.getsize(os.path.join(tmp, "image_encoder.onnx.data"))
            self.assertLess(graph, data / 5)
            onnx.checker.check_model(os.path.join(tmp, "image_encoder.onnx"))



@need_torch
class TestDimsFromManifest(unittest.TestCase):
    def test_round_trip_through_a_manifest(self):
        import json
        from _common import REPO_ROOT
        from omnitag_export.models import dims_from_manifest, tiny_dims
        path = os.path.join(REPO_ROOT, "packs", "tiny", "manifest.json")
        if not os.path.exists(path):
            self.skipTest("packs/tiny is absent")
        with open(path) as fh:
            self.assertEqual(dims_from_manifest(json.load(fh)), tiny_dims())


if __name__ == "__main__":
    unittest.main()
