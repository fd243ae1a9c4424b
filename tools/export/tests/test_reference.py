"""Reference parity: export upstream's tiny RAM++ / CLIP checkpoints and reproduce upstream's
logits, description weights and text embeddings, in PyTorch and through onnxruntime."""
import json
import os
import shutil
import tempfile
import unittest

from _common import MERGES, REF, need_regex, need_shared, need_torch

TOL = 1e-4
FILES = [os.path.join(REF, f) for f in ("ram_plus_tiny.pth", "clip_tiny_jit.pt", "clip_tiny.pth", "config.json",
                                         "pixel_values.npy", "logits_closed.npy", "logits_open.npy",
                                         "text_embeds.npy", "text_tokens.npy")]


def reference_tags_json(path):
    with open(os.path.join(REF, "config.json"), encoding="utf-8") as fh:
        closed = json.load(fh)["ram_plus"]["closed_set"]
    tags = [{"name": n, "nameZh": z, "threshold": t}
            for n, z, t in zip(closed["tags"], closed["tags_chinese"], closed["class_threshold"])]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(tags, fh, ensure_ascii=False)


@need_torch
@need_regex
@need_shared(*FILES, MERGES)
class TestReferenceParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import numpy as np
        cls.np = np
        cls.ref = {n: np.load(os.path.join(REF, n + ".npy")) for n in (
            "pixel_values", "image_embeds", "logits_closed", "logits_open", "description_weights_closed",
            "description_weights_open", "text_embeds", "text_tokens")}
        with open(os.path.join(REF, "config.json"), encoding="utf-8") as fh:
            cls.config = json.load(fh)
        cls.tmp = tempfile.mkdtemp(prefix="omnitag-ref-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def _modules(self, clip_file):
        from omnitag_export.checkpoints import load_official
        return load_official(os.path.join(REF, "ram_plus_tiny.pth"), os.path.join(REF, clip_file))

    def test_dimensions_read_from_state_dict(self):
        mods, le = self._modules("clip_tiny_jit.pt")
        d = mods.dims
        self.assertEqual((d.swin.image_size, d.swin.patch, d.swin.window, d.swin.embed_dim), (224, 4, 7, 16))
        self.assertEqual((d.swin.depths, d.swin.heads), ([2, 2, 2], [1, 2, 4]))
        self.assertEqual((d.decoder.embed_dim, d.decoder.hidden, d.decoder.layers, d.decoder.intermediate),
                         (512, 64, 2, 128))
        self.assertEqual((d.text.width, d.text.layers, d.text.heads, d.text.embed_dim), (64, 2, 1, 512))
        self.assertEqual(d.image_tokens, 197)
        self.assertEqual(tuple(le.shape), (84, 512))

    def test_pytorch_modules_match_upstream(self):
        import torch
        np = self.np
        for clip_file in ("clip_tiny_jit.pt", "clip_tiny.pth"):
            mods, le = self._modules(clip_file)
            mask = torch.ones(12, 7, dtype=torch.bool)
            with torch.no_grad():
                emb = mods.image_encoder(torch.from_numpy(self.ref["pixel_values"]))
                self.assertLessEqual(np.abs(emb.numpy() - self.ref["image_embeds"]).max(), TOL)
                lo, w = mods.tag_decoder(emb, le.view(12, 7, -1), mask)
                self.assertLessEqual(np.abs(lo.numpy() - self.ref["logits_closed"]).max(), TOL)
                self.assertLessEqual(np.abs(w.numpy() - self.ref["description_weights_closed"]).max(), TOL)
                te = mods.text_encoder(torch.from_numpy(self.ref["text_tokens"].astype(np.int64)))
                self.assertLessEqual(np.abs(te.numpy() - self.ref["text_embeds"]).max(), TOL)
                lo, w = mods.tag_decoder(emb, te.view(12, 7, -1), mask)
                self.assertLessEqual(np.abs(lo.numpy() - self.ref["logits_open"]).max(), TOL)
                self.assertLessEqual(np.abs(w.numpy() - self.ref["description_weights_open"]).max(), TOL)

    def _export(self, clip_file, out):
        from omnitag_export.cli import main
        tags = os.path.join(self.tmp, "tags.json")
        reference_tags_json(tags)
        rc = main(["--ram-checkpoint", os.path.join(REF, "ram_plus_tiny.pth"), "--clip", os.path.join(REF, clip_file),
                   "--tags", tags, "--bpe", MERGES, "--out", out, "--no-verify"])
        self.assertEqual(rc, 0)

    def test_onnx_pack_matches_upstream(self):
        from omnitag_export.tokenizer import ClipTokenizer
        from omnitag_export.verify import OnnxRunner, max_abs
        np = self.np
        for clip_file in ("clip_tiny_jit.pt", "clip_tiny.pth"):
            out = os.path.join(self.tmp, "pack-" + clip_file.replace(".", "-"))
            self._export(clip_file, out)
            with open(os.path.join(out, "manifest.json")) as fh:
                man = json.load(fh)
            self.assertEqual(man["dims"]["imageTokens"], 197)
            self.assertIs(man["randomWeights"], False)  # exported from checkpoints: real weights
            self.assertEqual((man["builtin"]["count"], man["builtin"]["descriptionsPerTag"]), (12, 7))
            with open(os.path.join(out, "builtin", "tags.json"), encoding="utf-8") as fh:
                tags = json.load(fh)
            self.assertEqual([t["name"] for t in tags], self.config["ram_plus"]["closed_set"]["tags"])
            self.assertEqual([t["threshold"] for t in tags], self.config["ram_plus"]["closed_set"]["class_threshold"])
            closed = np.fromfile(os.path.join(out, "builtin", "label_embeds.bin"), dtype="<f4").reshape(12, 7, 512)
            tok = ClipTokenizer.from_merges_file(MERGES)
            own_ids = np.array([tok.tokenize(t) for cat in self.config["open_set"]["descriptions"] for t in cat],
                               dtype=np.int64)
            self.assertTrue(np.array_equal(own_ids, self.ref["text_tokens"]))
            mask = np.ones((12, 7), bool)
            r = OnnxRunner(out)
            try:
                r.add("image_encoder.onnx", {"pixel_values": self.ref["pixel_values"]}, ["image_embeds"])
                r.add("text_encoder.onnx", {"input_ids": self.ref["text_tokens"].astype(np.int64)}, ["text_embeds"])
                r.add("text_encoder.onnx", {"input_ids": own_ids}, ["text_embeds"])
                got = r.execute()
                if got is None:
                    self.skipTest(f"onnxruntime-node unavailable: {r.skipped_reason}")
                emb = got[0]["image_embeds"]
                te, own = got[1]["text_embeds"], got[2]["text_embeds"]
            finally:
                r.close()
            r = OnnxRunner(out)
            try:
                r.add("tag_decoder.onnx", {"image_embeds": emb, "label_embeds": closed, "label_mask": mask},
                      ["logits", "description_weights"])
                r.add("tag_decoder.onnx", {"image_embeds": emb, "label_embeds": self.ref["text_embeds"].reshape(12, 7, 512),
                                           "label_mask": mask}, ["logits", "description_weights"])
                r.add("tag_decoder.onnx", {"image_embeds": emb, "label_embeds": own.reshape(12, 7, 512),
                                           "label_mask": mask}, ["logits", "description_weights"])
                got = r.execute()
            finally:
                r.close()
            figures = {
                "image_embeds": max_abs(emb, self.ref["image_embeds"]),
                "logits_closed": max_abs(got[0]["logits"], self.ref["logits_closed"]),
                "weights_closed": max_abs(got[0]["description_weights"], self.ref["description_weights_closed"]),
                "logits_open": max_abs(got[1]["logits"], self.ref["logits_open"]),
                "weights_open": max_abs(got[1]["description_weights"], self.ref["description_weights_open"]),
                "text_embeds": max_abs(te, self.ref["text_embeds"]),
                "text_embeds_own_tokens": max_abs(own, self.ref["text_embeds"]),
                "logits_open_own_text": max_abs(got[2]["logits"], self.ref["logits_open"]),
            }
            print(f"\n[{clip_file}] max |onnx - upstream|: " + ", ".join(f"{k} {v:.2e}" for k, v in figures.items()))
            for k, v in figures.items():
                self.assertLessEqual(v, TOL, k)


if __name__ == "__main__":
    unittest.main()
