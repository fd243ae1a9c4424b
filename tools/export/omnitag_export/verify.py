"""Runs graphs with onnxruntime-node (through verify_onnx.mjs) and compares with PyTorch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

from .errors import ExportError

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "verify_onnx.mjs")


class OnnxRunner:
    """Collects runs, executes them in one node process, returns outputs as numpy arrays."""

    def __init__(self, pack_dir: str, threads: int = 2, providers=None):
        self.pack_dir = os.path.abspath(pack_dir)
        self.threads = threads
        self.providers = providers or ["cpu"]
        self.work = tempfile.mkdtemp(prefix="omnitag-verify-")
        self.runs = []
        self.skipped_reason = None

    def add(self, model: str, inputs: dict, outputs) -> int:
        i = len(self.runs)
        ins = {}
        for name, arr in inputs.items():
            f = f"r{i}_in_{name}.npy"
            np.save(os.path.join(self.work, f), np.ascontiguousarray(arr))
            ins[name] = f
        outs = {name: f"r{i}_out_{name}.npy" for name in outputs}
        self.runs.append({"model": os.path.join(self.pack_dir, model), "inputs": ins, "outputs": outs})
        return i

    def execute(self, timeout: int = 3600):
        """Returns a list of {output: array} per run, or None (reason in skipped_reason)."""
        node = shutil.which("node")
        if node is None:
            self.skipped_reason = "node is not on PATH"
            return None
        job = os.path.join(self.work, "job.json")
        with open(job, "w") as fh:
            json.dump({"threads": self.threads, "executionProviders": self.providers, "runs": self.runs}, fh)
        proc = subprocess.run([node, SCRIPT, job], capture_output=True, text=True, timeout=timeout,
                              cwd=os.path.dirname(SCRIPT))
        if proc.returncode == 3:
            self.skipped_reason = proc.stderr.strip() or "onnxruntime-node is not installed"
            return None
        if proc.returncode != 0:
            raise ExportError(f"onnxruntime could not run the pack (verify_onnx.mjs exit {proc.returncode}):\n"
                              f"{proc.stderr[-4000:].strip()}")
        self.log = proc.stdout
        return [{n: np.load(os.path.join(self.work, f)) for n, f in r["outputs"].items()} for r in self.runs]

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)


def max_abs(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} != {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0
