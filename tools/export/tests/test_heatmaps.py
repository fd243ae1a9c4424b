"""The heat-map graph: tag_decoder.onnx is unchanged by it, and its cross_attention output is the
attention the decoder's own PyTorch forward computes (recomputed from hooked q/k projections),
through onnxruntime-node, within 1e-5."""
import json
import os
import shutil
import tempfile
import unittest

from _common import REPO_ROOT, SHARED, need_torch

PACK = os.path.join(REPO_ROOT, "packs", "tiny")
IMAGES = os.path.join(SHARED, "data", "images")


def tiny_modules():
    from omnitag_export.models import build_modules, random_init_, tiny_dims
    return random_init_(build_modules(tiny_dims()), 0)


@need_torch
class TestHeatmapExport(unittest.TestCase):
    def test_tag_decoder_graph_is_byte_identical_with_and_without_heat_maps(self):
        from omnitag_export.onnx_export import HEATMAP_GRAPH, export_graphs
        mods = tiny_modules()
        tmp = tempfile.mkdtemp(prefix="omnitag-hm-")
        try:
            a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
            os.makedirs(a)
            os.makedirs(b)
            plain = export_graphs(mods, a)
            with_maps = export_graphs(mods, b, heatmaps=True)
            self.assertNotIn(HEATMAP_GRAPH, plain)
            self.assertIn(HEATMAP_GRAPH, with_maps)
            for name in ("tag_decoder.onnx", "image_encoder.onnx", "text_encoder.onnx"):
                with open(os.path.join(a, name), "rb") as x, open(os.path.join(b, name), "rb") as y:
                    self.assertEqual(x.read(), y.read(), name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_forward_with_attention_keeps_the_logits_of_forward(self):
        import torch
        mods = tiny_modules()
        g = torch.Generator().manual_seed(3)
        emb = torch.randn(2, mods.dims.image_tokens, mods.dims.decoder.embed_dim, generator=g)
        lab = torch.randn(5, 3, mods.dims.decoder.embed_dim, generator=g)
        mask = torch.tensor([[True, True, False]] * 5)
        with torch.no_grad():
            lo, w = mods.tag_decoder(emb, lab, mask)
            lo2, w2, att = mods.tag_decoder.forward_with_attention(emb, lab, mask)
        self.assertTrue(torch.equal(lo, lo2))
        self.assertTrue(torch.equal(w, w2))
        self.assertEqual(tuple(att.shape), (2, 5, mods.dims.decoder.layers, mods.dims.image_tokens))
        self.assertTrue(torch.allclose(att.sum(-1), torch.ones(2, 5, 2), atol=1e-6))


@need_torch
@unittest.skipUnless(os.path.exists(os.path.join(PACK, "manifest.json")), "packs/tiny is absent")
class TestTinyPackHeatmaps(unittest.TestCase):
    def test_cross_attention_matches_the_modules_attention(self):
        import numpy as np
        import torch
        from omnitag_export.pack import selftest_pixels
        from omnitag_export.verify import OnnxRunner, max_abs
        from omnitag_export.verify_pack import preprocess, reference_attention
        with open(os.path.join(PACK, "manifest.json"), encoding="utf-8") as fh:
            man = json.load(fh)
        hm = man["heatmaps"]
        s, e = man["image"]["size"], man["dims"]["embedDim"]
        gh, gw = hm["grid"]
        self.assertEqual(gh * gw + 1, man["dims"]["imageTokens"])
        b = man["builtin"]
        label = np.fromfile(os.path.join(PACK, b["labelEmbeds"]), dtype="<f4").reshape(b["count"], -1, e)
        with open(os.path.join(PACK, b["tags"]), encoding="utf-8") as fh:
            tags = json.load(fh)
        rows = [0, 1, 7, 42, 1000, 4584]  # even and odd rows: 3 and 2 descriptions (padding masked)
        lab = label[rows].copy()
        mask = np.array([[j < tags[r].get("descriptionCount", lab.shape[1]) for j in range(lab.shape[1])] for r in rows])
        pix = selftest_pixels(1, s)
        photos = sorted(f for f in os.listdir(IMAGES) if f.endswith(".jpg")) if os.path.isdir(IMAGES) else []
        if photos:
            pix = np.concatenate([pix, preprocess(os.path.join(IMAGES, photos[0]), s)[None]])
        mods = tiny_modules()
        with torch.no_grad():
            emb = mods.image_encoder(torch.from_numpy(pix)).numpy()
        ref = reference_attention(mods.tag_decoder, torch.from_numpy(emb), torch.from_numpy(lab), torch.from_numpy(mask))
        r = OnnxRunner(PACK)
        try:
            r.add(hm["graph"], {"image_embeds": emb, "label_embeds": lab, "label_mask": mask},
                  ["logits", hm["output"]])
            r.add("tag_decoder.onnx", {"image_embeds": emb, "label_embeds": lab, "label_mask": mask}, ["logits"])
            got = r.execute()
            if got is None:
                self.skipTest(f"onnxruntime-node unavailable: {r.skipped_reason}")
        finally:
            r.close()
        att = got[0][hm["output"]]
        self.assertEqual(att.shape, (pix.shape[0], len(rows), hm["layers"], gh * gw + 1))
        self.assertLessEqual(max_abs(att, ref), 1e-5)
        # a map is a distribution over the image tokens, per layer
        self.assertLessEqual(max_abs(att.sum(-1), np.ones(att.shape[:-1])), 1e-5)
        # and the maps are not all alike (the test would pass on a constant otherwise)
        self.assertGreater(float(np.abs(att - att.mean(axis=1, keepdims=True)).max()), 1e-3)
        # the second graph scores as the first
        self.assertLessEqual(max_abs(got[0]["logits"], got[1]["logits"]), 1e-5)


if __name__ == "__main__":
    unittest.main()
