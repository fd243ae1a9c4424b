"""CLIP byte-level BPE: the tokenizer itself, tokenizer.json (Hugging Face format) and a
small interpreter of that JSON used to prove it encodes like CLIP."""
from __future__ import annotations

import gzip
import json
import unicodedata
from functools import lru_cache

import regex

from .textclean import clean_for_clip

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
SOT_ID = 49406
EOT_ID = 49407
VOCAB_SIZE = 49408
CONTEXT = 77
N_MERGES = VOCAB_SIZE - 256 * 2 - 2  # 48894, the merges CLIP uses from the file

# CLIP's pre-tokeniser (matched case-insensitively, on lower-cased text).
CLIP_PATTERN = (r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                r"[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")
# tokenizer.json splits without the special tokens: they are added tokens there.
HF_SPLIT_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict:
    """Byte -> printable character, printable Latin-1 bytes keeping their own character."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
            + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    out = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + n)
            n += 1
    # Order matters: it is CLIP's vocabulary order (kept bytes first).
    return {b: out[b] for b in keep + [b for b in range(256) if b not in keep]}


def read_merges(path: str) -> list:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    # Line 0 is a version header; CLIP uses the next N_MERGES lines.
    merges = [tuple(line.split()) for line in lines[1:1 + N_MERGES]]
    if len(merges) != N_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{path}: expected {N_MERGES} merges, found {len(merges)} usable lines")
    return merges


def build_vocab(merges: list) -> list:
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [SOT, EOT]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    return vocab


def bpe(token: str, ranks: dict) -> list:
    """Merge the lowest-ranked adjacent pair, everywhere at once, until none is known."""
    word = list(token[:-1]) + [token[-1] + "</w>"]
    while len(word) > 1:
        best = None
        for pair in zip(word, word[1:]):
            r = ranks.get(pair)
            if r is not None and (best is None or r < best[0]):
                best = (r, pair)
        if best is None:
            break
        a, b = best[1]
        merged = []
        i = 0
        while i < len(word):
            if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                merged.append(a + b)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


class ClipTokenizer:
    """CLIP's tokenizer semantics (clean-up, pattern, byte-level BPE with </w>)."""

    def __init__(self, merges: list):
        self.merges = merges
        self.vocab = build_vocab(merges)
        self.encoder = {t: i for i, t in enumerate(self.vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.pattern = regex.compile(CLIP_PATTERN, regex.IGNORECASE)
        self._cache = {SOT: [SOT], EOT: [EOT]}

    @classmethod
    def from_merges_file(cls, path: str) -> "ClipTokenizer":
        return cls(read_merges(path))

    def bpe_tokens(self, text: str) -> list:
        out = []
        for piece in self.pattern.findall(clean_for_clip(text)):
            tok = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
            if tok not in self._cache:
                self._cache[tok] = bpe(tok, self.ranks)
            out.extend(self._cache[tok])
        return out

    def encode(self, text: str) -> list:
        return [self.encoder[t] for t in self.bpe_tokens(text)]

    def tokenize(self, text: str, context: int = CONTEXT) -> list:
        """SOT + ids + EOT, zero padded; too long -> cut, the last id forced to EOT."""
        ids = [SOT_ID] + self.encode(text) + [EOT_ID]
        if len(ids) > context:
            ids = ids[:context]
            ids[-1] = EOT_ID
        return ids + [0] * (context - len(ids))


def tokenizer_json(merges: list) -> dict:
    """CLIP's BPE in the Hugging Face `tokenizers` JSON format (as for openai/clip-vit-*).

    The normaliser has no ftfy or HTML unescaping: callers clean text as CLIP does first.
    """
    vocab = build_vocab(merges)
    special = [
        {"id": SOT_ID, "content": SOT, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": True},
        {"id": EOT_ID, "content": EOT, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": True},
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": HF_SPLIT_PATTERN}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOT, EOT_ID], "cls": [SOT, SOT_ID],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": EOT,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "</w>",
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": {t: i for i, t in enumerate(vocab)},
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def write_tokenizer_json(merges: list, path: str) -> None:
    data = json.dumps(tokenizer_json(merges), ensure_ascii=False, separators=(",", ":"))
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(data)


class HFJsonTokenizer:
    """Runs a tokenizer.json of the shape written above, step by step as `tokenizers` does.

    Used to prove that tokenizer.json alone (what the server reads) gives CLIP's ids.
    """

    def __init__(self, path_or_dict):
        spec = path_or_dict
        if isinstance(spec, str):
            with open(spec, encoding="utf-8") as fh:
                spec = json.load(fh)
        model = spec["model"]
        if model["type"] != "BPE" or model.get("end_of_word_suffix") != "</w>":
            raise ValueError("tokenizer.json: expected a BPE model with end_of_word_suffix '</w>'")
        self.vocab = model["vocab"]
        self.ranks = {tuple(m.split(" ")) if isinstance(m, str) else tuple(m): i
                      for i, m in enumerate(model["merges"])}
        self.added = {t["content"]: t["id"] for t in spec["added_tokens"]}
        self.added_re = regex.compile("|".join(regex.escape(t) for t in self.added))
        norms = spec["normalizer"]["normalizers"]
        assert [n["type"] for n in norms] == ["NFC", "Replace", "Lowercase"], norms
        self.ws_re = regex.compile(norms[1]["pattern"]["Regex"])
        self.ws_to = norms[1]["content"]
        pre = spec["pre_tokenizer"]["pretokenizers"]
        assert pre[0]["type"] == "Split" and pre[0]["behavior"] == "Removed" and pre[0]["invert"]
        self.split_re = regex.compile(pre[0]["pattern"]["Regex"])
        self.byte_map = bytes_to_unicode()
        pp = spec["post_processor"]
        self.cls_id, self.sep_id = pp["cls"][1], pp["sep"][1]

    def _normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFC", text)
        text = self.ws_re.sub(self.ws_to, text)
        return text.lower()

    def encode(self, text: str, add_special_tokens: bool = True) -> list:
        ids = []
        text = self._normalize(text)
        pos = 0
        pieces = []
        for m in self.added_re.finditer(text):
            pieces.append((text[pos:m.start()], None))
            pieces.append((None, self.added[m.group(0)]))
            pos = m.end()
        pieces.append((text[pos:], None))
        for chunk, special_id in pieces:
            if special_id is not None:
                ids.append(special_id)
                continue
            for word in self.split_re.findall(chunk):
                tok = "".join(self.byte_map[b] for b in word.encode("utf-8"))
                ids.extend(self.vocab[t] for t in bpe(tok, self.ranks))
        if add_special_tokens:
            ids = [self.cls_id] + ids + [self.sep_id]
        return ids
