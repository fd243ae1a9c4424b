#!/usr/bin/python3
"""Reference image preprocessing, as upstream RAM++ does it, for fidelity tests.

    PIL.Image.open -> convert('RGB') -> torchvision Resize((S, S)) (bilinear, antialiased,
    aspect ratio not kept, no EXIF rotation) -> uint8

Writes a small JSON summary per image and size (the file's sha256, per-channel means of
the resized 8-bit image and a sparse grid of its values) that the TypeScript tests compare
with, and optionally the full resized arrays as .npy files for local investigation.

    /usr/bin/python3 tools/reference/preprocess_reference.py --sizes 224 384 \
        --out test/fixtures/preprocess-reference.json [--npy-dir /tmp/ref] IMAGE...

Needs Debian's python3-pil, python3-torchvision and numpy (no network).
"""
import argparse
import hashlib
import json
import os

import numpy as np
import PIL
import torchvision
from PIL import Image
from torchvision import transforms

GRID = 8  # grid points per side of the sparse sample


def resized_uint8(path: str, size: int) -> np.ndarray:
    """[S, S, 3] uint8: exactly what upstream normalises (ToTensor/Normalize are exact on it)."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    out = transforms.Resize((size, size))(rgb)  # PIL bilinear + antialias, like upstream get_transform
    return np.asarray(out, dtype=np.uint8)


def grid_positions(size: int) -> list:
    # Evenly spread, avoiding the exact borders so that small shifts show up.
    return [int(round((i + 0.5) * size / GRID)) for i in range(GRID)]


def compact_json(doc: dict) -> str:
    """Top level indented, one line per entry: small and still diffable."""
    head = {k: v for k, v in doc.items() if k != "entries"}
    lines = [json.dumps(head, indent=1)[:-2] + ',\n "entries": [']
    lines.append(",\n".join("  " + json.dumps(e, separators=(",", ":")) for e in doc["entries"]))
    lines.append(" ]\n}\n")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 384])
    ap.add_argument("--out", required=True)
    ap.add_argument("--npy-dir", default=None)
    args = ap.parse_args()

    entries = []
    for path in args.images:
        data = open(path, "rb").read()
        with Image.open(path) as im:
            mode, (w, h), fmt = im.mode, im.size, im.format
        for size in args.sizes:
            arr = resized_uint8(path, size)
            pos = grid_positions(size)
            grid = [[[int(v) for v in arr[y, x]] for x in pos] for y in pos]
            entries.append(
                {
                    "file": os.path.basename(path),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "format": fmt,
                    "mode": mode,
                    "width": w,
                    "height": h,
                    "size": size,
                    "channelMeans": [round(float(arr[..., c].mean()), 4) for c in range(3)],
                    "gridPositions": pos,
                    "grid": grid,
                }
            )
            if args.npy_dir:
                os.makedirs(args.npy_dir, exist_ok=True)
                np.save(os.path.join(args.npy_dir, f"{os.path.basename(path)}.{size}.npy"), arr)
    doc = {
        "what": "PIL convert('RGB') + torchvision Resize((S,S)) of each image as uint8 [S,S,3]: "
        "per-channel means and the values at gridPositions x gridPositions (row-major, [y][x][rgb])",
        "made_by": "tools/reference/preprocess_reference.py",
        "pil": PIL.__version__,
        "torchvision": torchvision.__version__,
        "entries": entries,
    }
    with open(args.out, "w") as f:
        f.write(compact_json(doc))
    print(f"wrote {len(entries)} entries to {args.out}")


if __name__ == "__main__":
    main()
