"""Shared helpers: import path, shared data location, skips."""
import os
import sys
import unittest

EXPORT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(EXPORT_DIR))
if EXPORT_DIR not in sys.path:
    sys.path.insert(0, EXPORT_DIR)

SHARED = os.environ.get("OMNITAG_SHARED_DIR") or os.path.join(REPO_ROOT, "..", "shared")
REF = os.path.join(SHARED, "reference", "upstream-tiny")
MERGES = os.path.join(SHARED, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
RAM_DATA = os.path.join(SHARED, "data", "ram")

try:
    import torch  # noqa: F401
    import onnx  # noqa: F401
    HAVE_TORCH = True
except Exception:  # noqa: BLE001
    HAVE_TORCH = False

try:
    import regex  # noqa: F401
    HAVE_REGEX = True
except Exception:  # noqa: BLE001
    HAVE_REGEX = False


def need_shared(*paths):
    missing = [p for p in paths if not os.path.exists(p)]
    return unittest.skipIf(bool(missing), f"shared data absent (set OMNITAG_SHARED_DIR or place it at ../shared): "
                                          f"{', '.join(os.path.normpath(p) for p in missing)}")


need_torch = unittest.skipUnless(HAVE_TORCH, "torch and onnx are not importable (Debian: python3-torch python3-onnx)")
need_regex = unittest.skipUnless(HAVE_REGEX, "the 'regex' module is missing (Debian: python3-regex)")
