"""CLIP's text clean-up (ftfy.fix_text -> html.unescape twice -> strip, whitespace collapse).

The real ftfy is used when it is importable. Otherwise a built-in subset of ftfy 6's
default fixes runs: the steps that change real-world captions (HTML entities, UTF-8
mojibake, C1 controls, ligatures, character width, curly quotes, line breaks, control
characters, NFC). It is checked against the reference tokenizer cases, which record
what ftfy 6.3.1 produced.
"""
from __future__ import annotations

import html
import html.entities
import re
import unicodedata

try:  # pragma: no cover - depends on the machine
    import ftfy as _ftfy
except Exception:  # noqa: BLE001
    _ftfy = None


def _sloppy_table(name: str) -> str:
    # Bytes a codec leaves undefined decode to the same code point (as browsers do).
    out = []
    for b in range(256):
        try:
            out.append(bytes([b]).decode(name))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out)


_CP1252 = _sloppy_table("cp1252")
_ENC_1252 = {ord(c): b for b, c in enumerate(_CP1252)}
_LATIN1 = {i: i for i in range(256)}


def _encode(text: str, table: dict) -> bytes | None:
    out = bytearray()
    for ch in text:
        b = table.get(ord(ch))
        if b is None:
            return None
        out.append(b)
    return bytes(out)


_HTML_ENTITY_RE = re.compile(r"&#?[0-9A-Za-z]{1,24};")


def _build_entities() -> dict:
    ents = {}
    for name, char in html.entities.html5.items():
        if not name.endswith(";"):
            continue
        ents["&" + name] = char
        if name == name.lower():
            upper = "&" + name.upper()
            if html.unescape(upper) == upper:
                ents[upper] = char.upper()
    return ents


_ENTITIES = _build_entities()


def _unescape_one(m: re.Match) -> str:
    s = m.group(0)
    if s in _ENTITIES:
        return _ENTITIES[s]
    if s.startswith("&#"):
        u = html.unescape(s)
        return s if ";" in u else u
    return s


_ANSI_RE = re.compile("\x1b\\[((?:\\d|;)*)([a-zA-Z])")
_C1_RE = re.compile("[\x80-\x9f]")
# A lead byte (C2..F4) followed by a continuation byte (80..BF), as seen through cp1252/latin-1.
_LEAD = "".join(_CP1252[b] for b in range(0xC2, 0xF5))
_CONT = "".join(sorted(set(_CP1252[b] for b in range(0x80, 0xC0)) | {chr(b) for b in range(0x80, 0xC0)}))
_MOJIBAKE_RE = re.compile("[" + re.escape(_LEAD) + "][" + re.escape(_CONT) + "]")

_LIGATURES = {
    ord(c): unicodedata.normalize("NFKC", c)
    for c in "\u0132\u0133\u0149\u01c4\u01c5\u01c6\u01c7\u01c8\u01c9\u01ca\u01cb\u01cc"
    "\u01f1\u01f2\u01f3\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"
}
_WIDTH = {0x3000: " "}
for _i in range(0xFF01, 0xFFF0):
    _alt = unicodedata.normalize("NFKC", chr(_i))
    if _alt != chr(_i):
        _WIDTH[_i] = _alt
_SINGLE_Q = re.compile("[\u02bc\u2018-\u201b]")
_DOUBLE_Q = re.compile("[\u201c-\u201f]")
_CONTROL = dict.fromkeys(
    list(range(0x00, 0x09)) + [0x0B] + list(range(0x0E, 0x20)) + [0x7F]
    + list(range(0x206A, 0x2070)) + [0xFEFF] + list(range(0xFFF9, 0xFFFD))
)


def _fix_encoding(text: str) -> str:
    for _ in range(8):
        if text.isascii() or not (_MOJIBAKE_RE.search(text) or _C1_RE.search(text)):
            return text
        fixed = None
        for table in (_LATIN1, _ENC_1252):
            data = _encode(text, table)
            if data is None:
                continue
            try:
                fixed = data.decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        if fixed is None or fixed == text:
            break
        text = fixed
    # Remaining C1 controls were meant as cp1252.
    if _C1_RE.search(text):
        text = _C1_RE.sub(lambda m: _CP1252[ord(m.group(0))], text)
    return text


def _fix_surrogates(text: str) -> str:
    if not re.search("[\ud800-\udfff]", text):
        return text
    text = re.sub("[\ud800-\udbff][\udc00-\udfff]",
                  lambda m: chr(0x10000 + ((ord(m.group(0)[0]) - 0xD800) << 10) + ord(m.group(0)[1]) - 0xDC00),
                  text)
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def _fix_segment(text: str, unescape: bool) -> str:
    for _ in range(16):
        orig = text
        if unescape:
            text = _HTML_ENTITY_RE.sub(_unescape_one, text)
        text = _ANSI_RE.sub("", text)
        text = _fix_encoding(text)
        text = text.translate(_LIGATURES)
        text = text.translate(_WIDTH)
        text = _SINGLE_Q.sub("'", text)
        text = _DOUBLE_Q.sub('"', text)
        text = (text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
                .replace("\u2029", "\n").replace("\u0085", "\n"))
        text = _fix_surrogates(text)
        text = text.translate(_CONTROL)
        text = unicodedata.normalize("NFC", text)
        if text == orig:
            break
    return text


def fix_text_builtin(text: str) -> str:
    """ftfy.fix_text's default behaviour, on the subset described in the module doc."""
    out = []
    pos = 0
    unescape = True
    while pos < len(text):
        nl = text.find("\n", pos) + 1
        end = nl if nl else len(text)
        end = min(end, pos + 1_000_000)
        seg = text[pos:end]
        # ftfy stops unescaping for good once a segment looks like HTML.
        if unescape and "<" in seg:
            unescape = False
        out.append(_fix_segment(seg, unescape))
        pos = end
    return "".join(out)


def fix_text(text: str) -> str:
    if _ftfy is not None:
        return _ftfy.fix_text(text)
    return fix_text_builtin(text)


def basic_clean(text: str) -> str:
    text = fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def clean_for_clip(text: str) -> str:
    """What CLIP's tokenizer feeds to its BPE: cleaned, collapsed, lower-cased."""
    return whitespace_clean(basic_clean(text)).lower()


def uses_real_ftfy() -> bool:
    return _ftfy is not None
