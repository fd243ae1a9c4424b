"""CLIP tokenizer: Python implementation and tokenizer.json against the reference ids."""
import json
import os
import tempfile
import unittest

from _common import MERGES, RAM_DATA, REF, need_regex, need_shared

CASES = os.path.join(REF, "clip_tokenizer_cases.json")
DESCRIPTIONS = os.path.join(RAM_DATA, "openimages_rare_200_llm_tag_descriptions.json")


def corpus():
    """Varied strings beyond the reference cases."""
    out = [
        "", " ", "a", "A photo of a cat.", "CAFÉ crème brûlée", "naïve façade coöperate",
        "Straße ſ ß ẞ", "İstanbul ı I", "ǅ ǈ ǋ Ǳ", "ﬁ ﬂ ﬃ", "Ｆｕｌｌ ｗｉｄｔｈ ＡＢＣ １２３",
        "ｶﾀｶﾅ ﾊﾝｶｸ", "こんにちは世界", "中文：标签，测试。", "한국어 텍스트", "Ελληνικά κείμενο", "кириллица Текст",
        "עברית", "العربية", "हिन्दी", "ไทย", "e\u0301 a\u030a n\u0303", "\u1100\u1161\u11a8",
        "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
        "1️⃣ #️⃣ ©️ ™", "&amp; &lt;tag&gt; &quot;q&quot; &#39;s &#x41; &eacute; &nbsp; &AMP;",
        "<b>bold</b> &amp; more", "x < y &amp; z", "it's he'll we'd they're I'm you've",
        "IT'S HE'LL", "“smart” ‘quotes’ „low“ «guillemets»", "— – - ‒ … · • °",
        "tabs\tand\nnewlines\r\nand\u2028separators\u2029end", "   leading and trailing   ",
        "\u00a0nbsp\u2003em\u3000ideographic", "zero\u200bwidth\u200djoiner\ufeffbom",
        "control\x01\x02\x07chars\x7f", "\x1b[31mred\x1b[0m", "cafÃ© mojibake Ã¼ber â€œquoteâ€\x9d",
        "numbers 3.14159 1,000,000 42nd 1st 2nd 3rd", "e-mail@example.com https://x.y/z?q=1&r=2",
        "C++ C# F# .NET node.js", "$100 €50 £30 ¥20 ₹10", "½ ¼ ¾ ² ³ ⁴", "Ⅰ Ⅱ Ⅲ ⅳ",
        "math ∑ ∫ √ ∞ ≠ ≤ ≥", "arrows → ← ↑ ↓ ⇒", "<|startoftext|>", "x <|endoftext|> y",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "the " * 200,
        "Pneumonoultramicroscopicsilicovolcanoconiosis " * 5, "🍕" * 100, "中" * 300,
        "a photo of a 3D CG rendering.", "a photo of a t-shirt.", "a photo of a Ferris wheel.",
    ]
    return out


@need_regex
@need_shared(CASES, MERGES)
class TestAgainstReference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from omnitag_export.tokenizer import ClipTokenizer, HFJsonTokenizer, write_tokenizer_json
        with open(CASES, encoding="utf-8") as fh:
            cls.cases = json.load(fh)["cases"]
        cls.tok = ClipTokenizer.from_merges_file(MERGES)
        cls.tmp = tempfile.mkdtemp()
        path = os.path.join(cls.tmp, "tokenizer.json")
        write_tokenizer_json(cls.tok.merges, path)
        cls.hf = HFJsonTokenizer(path)

    def test_300_cases_cleaning(self):
        from omnitag_export.textclean import clean_for_clip, fix_text_builtin
        for c in self.cases:
            self.assertEqual(fix_text_builtin(c["text"]), c["ftfy_fix_text"], c["text"])
            self.assertEqual(clean_for_clip(c["text"]), c["cleaned_lower"], c["text"])

    def test_300_cases_ids(self):
        self.assertEqual(len(self.cases), 300)
        for c in self.cases:
            self.assertEqual(self.tok.bpe_tokens(c["text"]), c["bpe_tokens"], c["text"])
            self.assertEqual(self.tok.encode(c["text"]), c["bpe_ids"], c["text"])
            self.assertEqual(self.tok.tokenize(c["text"]), c["context_ids_truncate_true"], c["text"])

    def test_300_cases_through_tokenizer_json(self):
        from omnitag_export.textclean import basic_clean
        for c in self.cases:
            ids = self.hf.encode(basic_clean(c["text"]))
            self.assertEqual(ids, [49406] + c["bpe_ids"] + [49407], c["text"])

    def test_vocabulary_layout(self):
        with open(os.path.join(self.tmp, "tokenizer.json"), encoding="utf-8") as fh:
            spec = json.load(fh)
        vocab = spec["model"]["vocab"]
        self.assertEqual(len(vocab), 49408)
        self.assertEqual(vocab["!"], 0)
        self.assertEqual(vocab["!</w>"], 256)
        self.assertEqual(vocab["<|startoftext|>"], 49406)
        self.assertEqual(vocab["<|endoftext|>"], 49407)
        self.assertEqual(len(spec["model"]["merges"]), 48894)
        self.assertEqual(sorted(vocab.values()), list(range(49408)))

    @need_shared(os.path.join(REF, "text_tokens.npy"), os.path.join(REF, "config.json"))
    def test_reference_text_tokens(self):
        import numpy as np
        with open(os.path.join(REF, "config.json"), encoding="utf-8") as fh:
            desc = json.load(fh)["open_set"]["descriptions"]
        want = np.load(os.path.join(REF, "text_tokens.npy"))
        got = np.array([self.tok.tokenize(t) for cat in desc for t in cat])
        self.assertTrue(np.array_equal(got, want))

    def test_corpus_python_equals_tokenizer_json(self):
        from omnitag_export.textclean import basic_clean
        texts = corpus()
        if os.path.exists(DESCRIPTIONS):
            with open(DESCRIPTIONS, encoding="utf-8") as fh:
                for item in json.load(fh):
                    for name, des in item.items():
                        texts.append(name)
                        texts.extend(des)
        self.assertGreater(len(texts), 60)
        for t in texts:
            want = [49406] + self.tok.encode(t) + [49407]
            self.assertEqual(self.hf.encode(basic_clean(t)), want, t)

    def test_truncation_keeps_end_token_last(self):
        ids = self.tok.tokenize("word " * 200)
        self.assertEqual(len(ids), 77)
        self.assertEqual(ids[0], 49406)
        self.assertEqual(ids[-1], 49407)
        self.assertNotIn(0, ids)


if __name__ == "__main__":
    unittest.main()
