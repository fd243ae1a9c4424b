"""The committed tiny pack: complete, consistent, reproducible bit for bit, and its self-test
expectations are met by onnxruntime."""
import hashlib
import json
import os
import shutil
import tempfile
import unittest

from _common import MERGES, RAM_DATA, REPO_ROOT, need_regex, need_shared, need_torch

PACK = os.path.join(REPO_ROOT, "packs", "tiny")


def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@unittest.skipUnless(os.path.exists(os.path.join(PACK, "manifest.json")), "packs/tiny is absent")
class TestTinyPack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(PACK, "manifest.json"), encoding="utf-8") as fh:
            cls.man = json.load(fh)

    def test_manifest_lists_every_file_with_its_hash(self):
        listed = set(self.man["files"])
        on_disk = set()
        for root, _, files in os.walk(PACK):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), PACK).replace(os.sep, "/")
                if rel != "manifest.json":
                    on_disk.add(rel)
        self.assertEqual(listed, on_disk)
        for rel, info in self.man["files"].items():
            p = os.path.join(PACK, rel)
            self.assertEqual(os.path.getsize(p), info["bytes"], rel)
            self.assertEqual(sha(p), info["sha256"], rel)
        text_id = hashlib.sha256(f"{self.man['files']['text_encoder.onnx']['sha256']}:"
                                 f"{self.man['files']['tokenizer.json']['sha256']}".encode()).hexdigest()
        self.assertEqual(self.man["textEncoderId"], text_id)

    def test_says_its_weights_are_random(self):
        self.assertIs(self.man["randomWeights"], True)
        self.assertEqual(self.man["createdBy"]["randomInit"], "tiny")

    @need_shared(RAM_DATA)
    def test_tags_json_is_the_official_tag_list(self):
        # `omnitag model install` exports the real checkpoint with --tags packs/tiny/builtin/tags.json:
        # it must read back as exactly upstream's ram_tag_list*.txt (names, Chinese names, thresholds, order)
        from omnitag_export.vocab import load_ram_vocab, load_tag_file
        official = load_ram_vocab(RAM_DATA)
        ours = load_tag_file(os.path.join(PACK, "builtin", "tags.json"))
        self.assertEqual(len(ours), 4585)
        self.assertEqual(ours.names, official.names)
        self.assertEqual(ours.names_zh, official.names_zh)
        self.assertEqual(ours.thresholds, official.thresholds)

    def test_size_budget(self):
        total = sum(os.path.getsize(os.path.join(PACK, f)) for f in self.man["files"]) + \
            os.path.getsize(os.path.join(PACK, "manifest.json"))
        self.assertLess(total, 12 * 1024 * 1024)

    def test_builtin_vocabulary(self):
        b = self.man["builtin"]
        e = self.man["dims"]["embedDim"]
        with open(os.path.join(PACK, b["tags"]), encoding="utf-8") as fh:
            tags = json.load(fh)
        self.assertEqual(len(tags), b["count"])
        self.assertEqual(b["count"], 4585)
        item = {"float32": 4, "float16": 2}[b["dtype"]]
        self.assertEqual(os.path.getsize(os.path.join(PACK, b["labelEmbeds"])),
                         b["count"] * b["descriptionsPerTag"] * e * item)
        for t in tags:
            self.assertTrue(1 <= t.get("descriptionCount", b["descriptionsPerTag"]) <= b["descriptionsPerTag"])
            self.assertTrue(0 <= t["threshold"] <= 1)  # upstream lists a few 1.0 (never selected)
        self.assertEqual(tags[0]["name"], "3D CG rendering")

    @need_torch
    @need_regex
    @need_shared(MERGES, RAM_DATA)
    def test_regenerates_bit_for_bit(self):
        from omnitag_export.cli import main
        import contextlib
        import io
        tmp = tempfile.mkdtemp(prefix="omnitag-tiny-")
        try:
            out = os.path.join(tmp, "tiny")
            with contextlib.redirect_stdout(io.StringIO()):
                rc = main(["--random-init", "tiny", "--heatmaps", "--out", out, "--bpe", MERGES, "--ram-dir", RAM_DATA,
                           "--no-verify"])
            self.assertEqual(rc, 0)
            with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
                fresh = json.load(fh)
            diff = [f for f in self.man["files"] if fresh["files"].get(f) != self.man["files"][f]]
            self.assertEqual(diff, [], "packs/tiny is stale: regenerate it (see docs/export.md)")
            self.assertEqual(sha(os.path.join(out, "manifest.json")), sha(os.path.join(PACK, "manifest.json")))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @need_torch
    def test_selftest_expectations_hold_in_onnxruntime(self):
        import numpy as np
        from omnitag_export.pack import selftest_pixels
        from omnitag_export.verify import OnnxRunner, max_abs
        with open(os.path.join(PACK, "selftest.json"), encoding="utf-8") as fh:
            st = json.load(fh)
        b = self.man["builtin"]
        e = self.man["dims"]["embedDim"]
        with open(os.path.join(PACK, b["tags"]), encoding="utf-8") as fh:
            tags = json.load(fh)
        d = b["descriptionsPerTag"]
        label = np.fromfile(os.path.join(PACK, b["labelEmbeds"]), dtype="<f4").reshape(b["count"], d, e)
        mask = np.array([[j < t.get("descriptionCount", d) for j in range(d)] for t in tags])
        pix = selftest_pixels(*st["pixelValues"]["shape"][:1], self.man["image"]["size"])
        ids = np.array([t["inputIds"] for t in st["texts"]], dtype=np.int64)
        r = OnnxRunner(PACK)
        try:
            r.add("image_encoder.onnx", {"pixel_values": pix}, ["image_embeds"])
            r.add("text_encoder.onnx", {"input_ids": ids}, ["text_embeds"])
            got = r.execute()
            if got is None:
                self.skipTest(f"onnxruntime-node unavailable: {r.skipped_reason}")
        finally:
            r.close()
        emb, txt = got[0]["image_embeds"], got[1]["text_embeds"]
        tol = st["tolerance"]
        self.assertLessEqual(max_abs(emb[:, 0], st["imageEmbedsToken0"]), tol)
        self.assertLessEqual(max_abs(txt, [t["embedding"] for t in st["texts"]]), tol)
        lab = np.zeros((3, 2, e), np.float32)
        lab[0], lab[1], lab[2, 0] = txt[0:2], txt[2:4], txt[4]
        r = OnnxRunner(PACK)
        try:
            r.add("tag_decoder.onnx", {"image_embeds": emb, "label_embeds": label, "label_mask": mask},
                  ["logits", "description_weights"])
            r.add("tag_decoder.onnx", {"image_embeds": emb, "label_embeds": lab,
                                       "label_mask": np.array(st["openSet"]["labelMask"])}, ["logits"])
            got = r.execute()
        finally:
            r.close()
        self.assertLessEqual(max_abs(got[0]["logits"], st["builtin"]["logits"]), tol)
        self.assertLessEqual(max_abs(got[0]["description_weights"][:, :3], st["builtin"]["descriptionWeightsFirst3"]), tol)
        self.assertLessEqual(max_abs(got[1]["logits"], st["openSet"]["logits"]), tol)

    @need_regex
    def test_selftest_token_ids_match_tokenizer_json(self):
        from omnitag_export.textclean import basic_clean
        from omnitag_export.tokenizer import HFJsonTokenizer
        with open(os.path.join(PACK, "selftest.json"), encoding="utf-8") as fh:
            st = json.load(fh)
        hf = HFJsonTokenizer(os.path.join(PACK, "tokenizer.json"))
        for t in st["texts"]:
            ids = hf.encode(basic_clean(t["text"]))
            if len(ids) > 77:
                ids = ids[:76] + [49407]
            self.assertEqual(ids + [0] * (77 - len(ids)), t["inputIds"], t["text"])


if __name__ == "__main__":
    unittest.main()
