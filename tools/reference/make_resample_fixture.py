#!/usr/bin/python3
"""Writes the self-contained resampler fixture (no shared data needed to run the test):

  test/fixtures/resample-input.png    a deterministic 97x61 RGB image (gradients + noise)
  test/fixtures/resample-reference.json
      for each target (width, height): Pillow's Image.resize(..., BILINEAR) of that image
      (what torchvision's Resize does on a PIL image) as the sha256 of its uint8 [H,W,3]
      bytes, per-channel means and a sparse grid of values.

    /usr/bin/python3 tools/reference/make_resample_fixture.py
"""
import hashlib
import json
import pathlib

import numpy as np
import PIL
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures"
TARGETS = [(32, 32), (40, 150), (97, 20), (128, 61), (200, 200), (1, 1)]


def make_input() -> Image.Image:
    rng = np.random.RandomState(20240613)
    h, w = 61, 97
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / (w - 1), y * 255 / (h - 1), (x + y) % 32 * 8], axis=-1)
    noisy = base + rng.randint(-60, 61, size=(h, w, 3))
    # a few hard edges, where resamplers differ most
    noisy[20:24, :, :] = 255
    noisy[:, 50:52, :] = 0
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    im = make_input()
    png = OUT / "resample-input.png"
    im.save(png, optimize=True)
    loaded = Image.open(png).convert("RGB")
    entries = []
    for w, h in TARGETS:
        arr = np.asarray(loaded.resize((w, h), Image.BILINEAR), dtype=np.uint8)
        ys = sorted({int(round((i + 0.5) * h / 6)) for i in range(6)} & set(range(h)))
        xs = sorted({int(round((i + 0.5) * w / 6)) for i in range(6)} & set(range(w)))
        entries.append(
            {
                "width": w,
                "height": h,
                "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
                "channelMeans": [round(float(arr[..., c].mean()), 4) for c in range(3)],
                "gridX": xs,
                "gridY": ys,
                "grid": [[[int(v) for v in arr[yy, xx]] for xx in xs] for yy in ys],
            }
        )
    doc = {
        "what": "Pillow Image.resize(BILINEAR) of resample-input.png; sha256 of the uint8 [H,W,3] bytes",
        "made_by": "tools/reference/make_resample_fixture.py",
        "pil": PIL.__version__,
        "input": {"file": "resample-input.png", "width": im.width, "height": im.height},
        "entries": entries,
    }
    head = {k: v for k, v in doc.items() if k != "entries"}
    body = ",\n".join("  " + json.dumps(e, separators=(",", ":")) for e in entries)
    (OUT / "resample-reference.json").write_text(json.dumps(head, indent=1)[:-2] + ',\n "entries": [\n' + body + "\n ]\n}\n")
    print(f"wrote {png} ({png.stat().st_size} bytes) and {len(entries)} reference entries")


if __name__ == "__main__":
    main()
