"""Bad input: each case a clear message naming the problem, exit code 2, and no pack left behind."""
import contextlib
import io
import json
import os
import shutil
import tempfile
import unittest

from _common import MERGES, REF, need_regex, need_shared, need_torch

RAM = os.path.join(REF, "ram_plus_tiny.pth")
CLIP = os.path.join(REF, "clip_tiny.pth")
CONFIG = os.path.join(REF, "config.json")


@need_torch
@need_regex
@need_shared(RAM, CLIP, CONFIG, MERGES)
class TestBadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch
        cls.torch = torch
        cls.sd = torch.load(RAM, map_location="cpu")["model"]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="omnitag-bad-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_export(self, ram=RAM, clip=CLIP, tags=CONFIG, out=None, extra=()):
        from omnitag_export.cli import main
        out = out or os.path.join(self.tmp, "pack")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["--ram-checkpoint", ram, "--clip", clip, "--tags", tags, "--bpe", MERGES, "--out", out,
                       "--no-verify", *extra])
        return rc, err.getvalue(), out

    def save_sd(self, sd, name="ram.pth"):
        p = os.path.join(self.tmp, name)
        self.torch.save({"model": sd}, p)
        return p

    def assertFailed(self, rc, err, out, *needles):
        self.assertEqual(rc, 2, err)
        self.assertTrue(err.startswith("error: "), err)
        for n in needles:
            self.assertIn(n, err)
        self.assertFalse(os.path.exists(out), "a pack folder was left behind")
        leftovers = [f for f in os.listdir(os.path.dirname(out)) if ".tmp-" in f or ".old-" in f]
        self.assertEqual(leftovers, [])

    def test_good_input_works(self):
        rc, err, out = self.run_export()
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(out, "manifest.json")))

    def test_missing_checkpoint(self):
        rc, err, out = self.run_export(ram=os.path.join(self.tmp, "nope.pth"))
        self.assertFailed(rc, err, out, "not found", "nope.pth")

    def test_truncated_checkpoint(self):
        p = os.path.join(self.tmp, "trunc.pth")
        with open(RAM, "rb") as src, open(p, "wb") as dst:
            dst.write(src.read()[: os.path.getsize(RAM) // 2])
        rc, err, out = self.run_export(ram=p)
        self.assertFailed(rc, err, out, "truncated", "trunc.pth")

    def test_truncated_clip(self):
        p = os.path.join(self.tmp, "clip.pt")
        jit = os.path.join(REF, "clip_tiny_jit.pt")
        with open(jit, "rb") as src, open(p, "wb") as dst:
            dst.write(src.read()[:100000])
        rc, err, out = self.run_export(clip=p)
        self.assertFailed(rc, err, out, "truncated", "clip.pt")

    def test_renamed_key_is_named(self):
        sd = dict(self.sd)
        k = "tagging_head.encoder.layer.1.output.dense.weight"
        sd[k + "_renamed"] = sd.pop(k)
        rc, err, out = self.run_export(ram=self.save_sd(sd))
        self.assertFailed(rc, err, out, "missing key", k, "unexpected key", k + "_renamed")

    def test_missing_key_is_named(self):
        sd = dict(self.sd)
        del sd["visual_encoder.layers.1.blocks.0.mlp.fc2.bias"]
        rc, err, out = self.run_export(ram=self.save_sd(sd))
        self.assertFailed(rc, err, out, "missing key", "visual_encoder.layers.1.blocks.0.mlp.fc2.bias")

    def test_extra_key_is_named(self):
        sd = dict(self.sd)
        sd["text_decoder.weight"] = self.torch.zeros(3)
        rc, err, out = self.run_export(ram=self.save_sd(sd))
        self.assertFailed(rc, err, out, "unexpected key", "text_decoder.weight")

    def test_shape_mismatch_is_named(self):
        sd = dict(self.sd)
        sd["image_proj.bias"] = self.torch.zeros(511)
        rc, err, out = self.run_export(ram=self.save_sd(sd))
        self.assertFailed(rc, err, out, "shape mismatch", "image_proj.bias")

    def test_missing_clip_key_is_named(self):
        sd = {k: v for k, v in self.torch.load(CLIP, map_location="cpu").items() if k != "ln_final.bias"}
        p = os.path.join(self.tmp, "clip.pth")
        self.torch.save(sd, p)
        rc, err, out = self.run_export(clip=p)
        self.assertFailed(rc, err, out, "missing key", "ln_final.bias")

    def test_wrong_architecture(self):
        rc, err, out = self.run_export(ram=CLIP)
        self.assertFailed(rc, err, out, "does not look like a RAM++ checkpoint")
        rc, err, out = self.run_export(clip=RAM)
        self.assertFailed(rc, err, out, "does not look like an OpenAI CLIP model")

    def test_tag_list_length_mismatch(self):
        tags = os.path.join(self.tmp, "tags.txt")
        with open(tags, "w") as fh:
            fh.write("\n".join(f"tag {i}" for i in range(11)))
        rc, err, out = self.run_export(tags=tags)
        self.assertFailed(rc, err, out, "11 tags", "84 rows")
        with open(tags, "w") as fh:
            fh.write("\n".join(f"tag {i}" for i in range(6)))
        rc, err, out = self.run_export(tags=tags, extra=["--descriptions-per-tag", "7"])
        self.assertFailed(rc, err, out, "6 tags", "84 rows")

    def test_missing_tag_list(self):
        rc, err, out = self.run_export(tags=os.path.join(self.tmp, "none.json"))
        self.assertFailed(rc, err, out, "not found", "none.json")

    def test_unwritable_output(self):
        blocker = os.path.join(self.tmp, "a-file")
        with open(blocker, "w") as fh:
            fh.write("x")
        out = os.path.join(blocker, "pack")
        rc, err, _ = self.run_export(out=out)
        self.assertEqual(rc, 2)
        self.assertIn("does not exist", err)
        self.assertFalse(os.path.exists(out))

    def test_refuses_to_replace_a_folder_that_is_not_a_pack(self):
        out = os.path.join(self.tmp, "mydocs")
        os.makedirs(out)
        with open(os.path.join(out, "precious.txt"), "w") as fh:
            fh.write("keep me")
        rc, err, _ = self.run_export(out=out)
        self.assertEqual(rc, 2)
        self.assertIn("holds no pack", err)
        self.assertEqual(os.listdir(out), ["precious.txt"])

    def test_failure_keeps_previous_pack_and_leaves_no_temp(self):
        rc, err, out = self.run_export()
        self.assertEqual(rc, 0, err)
        with open(os.path.join(out, "manifest.json")) as fh:
            before = fh.read()
        sd = dict(self.sd)
        del sd["fc.bias"]
        rc, err, _ = self.run_export(ram=self.save_sd(sd), out=out)
        self.assertEqual(rc, 2)
        with open(os.path.join(out, "manifest.json")) as fh:
            self.assertEqual(fh.read(), before)
        self.assertEqual([f for f in os.listdir(self.tmp) if ".tmp-" in f or ".old-" in f], [])

    def test_failure_while_writing_leaves_nothing(self):
        import numpy as np
        from omnitag_export.checkpoints import load_official
        from omnitag_export.errors import ExportError
        from omnitag_export.pack import write_pack
        from omnitag_export.tokenizer import read_merges
        from omnitag_export.vocab import load_tag_file
        mods, le = load_official(RAM, CLIP)
        vocab = load_tag_file(CONFIG)
        out = os.path.join(self.tmp, "pack")

        def boom(tmp, manifest):
            self.assertTrue(os.path.exists(os.path.join(tmp, "image_encoder.onnx")))
            raise ExportError("verification failed (simulated)")

        with self.assertRaises(ExportError):
            write_pack(out, mods, vocab, le.view(12, 7, -1).numpy(), np.full(12, 7), read_merges(MERGES),
                       name="x", description="x", verify_fn=boom, log=lambda m: None)
        self.assertEqual(os.listdir(self.tmp), [])


if __name__ == "__main__":
    unittest.main()
