"""The reference preprocessing timed on the same files, for bench/preprocess.bench.ts.

    /usr/bin/python3 bench/preprocess_pillow.py --threads N FILE...

RAM++'s pipeline: PIL open -> convert('RGB') -> torchvision Resize((384, 384)) (Pillow's
antialiased bilinear) -> ToTensor -> Normalize, torch limited to one thread. Per file: best of
5 for the whole pipeline (as upstream writes it, and with the previous decoded image held, see
main) and its parts, one image at a time. Then throughput: N worker
processes (one thread each) over 4 x N copies of the first file. One JSON line per result.
Without torchvision, ToTensor and Normalize are the same torch operations written out.
"""
import argparse
import io
import json
import multiprocessing
import time

import numpy as np
import PIL
import torch
from PIL import Image

try:
    import torchvision
    from torchvision import transforms
except ImportError:  # the same operations, without the package
    torchvision = None

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 384


def make_pipeline(keep=None):
    """`keep`: a list that holds each call's decoded images until the next call (see main)."""
    if torchvision is not None:
        t = transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

        def run_tv(data):
            im = Image.open(io.BytesIO(data))
            rgb = im.convert("RGB")
            if keep is not None:
                keep[:] = [im, rgb]
            return t(rgb)

        return run_tv
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)

    def run(data):
        im = Image.open(io.BytesIO(data))
        rgb = im.convert("RGB")
        if keep is not None:
            keep[:] = [im, rgb]
        img = rgb.resize((SIZE, SIZE), Image.BILINEAR)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)
        return (x - mean) / std

    return run


def best(fn, runs=5):
    low = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        low = min(low, time.perf_counter() - t)
    return round(low * 1000, 1)


def worker_init():
    torch.set_num_threads(1)
    global PIPELINE
    PIPELINE = make_pipeline()


def worker_run(data):
    PIPELINE(data)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipeline = make_pipeline()
    # The same with the previous call's decoded images still held while the next is decoded: on
    # this VM fresh pages are slow to fault in, and glibc then serves the next image's memory
    # from what it already has instead of new pages. Both figures are reported.
    held = []
    pipeline_held = make_pipeline(held)
    for path in args.files:
        data = open(path, "rb").read()
        decoded = Image.open(io.BytesIO(data)).convert("RGB")
        row = {
            "file": path,
            "pillowMs": best(lambda: pipeline(data)),
            "pillowHeldMs": best(lambda: pipeline_held(data)),
            "pillowDecodeMs": best(lambda: Image.open(io.BytesIO(data)).convert("RGB")),
            "pillowResizeMs": best(lambda: decoded.resize((SIZE, SIZE), Image.BILINEAR)),
        }
        print(json.dumps(row), flush=True)
    data = open(args.files[0], "rb").read()
    n = 4 * args.threads
    with multiprocessing.get_context("fork").Pool(args.threads, initializer=worker_init) as pool:
        pool.map(worker_run, [data] * args.threads)  # start-up and first-call costs off the clock
        t = time.perf_counter()
        pool.map(worker_run, [data] * n, chunksize=1)
        elapsed = time.perf_counter() - t
    print(json.dumps({"throughput": True, "file": args.files[0], "processes": args.threads, "images": n, "imagesPerSecond": round(n / elapsed, 2)}))
    print(json.dumps({"pil": PIL.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__ if torchvision else None}))


if __name__ == "__main__":
    main()
