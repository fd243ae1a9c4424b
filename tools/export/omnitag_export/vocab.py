"""The built-in vocabulary: tag names, Chinese names and thresholds."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .errors import ExportError

DEFAULT_THRESHOLD = 0.68
TAG_FILES = ("ram_tag_list.txt", "ram_tag_list_chinese.txt", "ram_tag_list_threshold.txt")


@dataclass
class Vocabulary:
    names: list
    names_zh: list      # None entries when unknown
    thresholds: list

    def __len__(self):
        return len(self.names)

    def entries(self, counts=None) -> list:
        out = []
        for i, name in enumerate(self.names):
            e = {"name": name}
            if self.names_zh[i] is not None:
                e["nameZh"] = self.names_zh[i]
            e["threshold"] = self.thresholds[i]
            if counts is not None:
                e["descriptionCount"] = int(counts[i])
            out.append(e)
        return out


def _lines(path: str) -> list:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        raise ExportError(f"tag list file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ExportError(f"{path} is not UTF-8 text ({exc})") from None


def _floats(path: str, lines: list) -> list:
    out = []
    for i, s in enumerate(lines):
        s = s.strip()
        if not s:
            continue
        try:
            out.append(float(s))
        except ValueError:
            raise ExportError(f"{path}:{i + 1}: not a number: {s!r}") from None
    return out


def find_ram_data(ram_dir: str) -> str:
    """Accepts the folder of the tag files, an installed `ram` package, or a checkout root."""
    for cand in (ram_dir, os.path.join(ram_dir, "data"), os.path.join(ram_dir, "ram", "data")):
        if os.path.isfile(os.path.join(cand, TAG_FILES[0])):
            return cand
    raise ExportError(f"no {TAG_FILES[0]} in {ram_dir} (nor in its data/ or ram/data/)")


def load_ram_vocab(ram_dir: str) -> Vocabulary:
    d = find_ram_data(ram_dir)
    names = [s.strip() for s in _lines(os.path.join(d, TAG_FILES[0]))]
    while names and not names[-1]:
        names.pop()
    if any(not n for n in names):
        raise ExportError(f"{os.path.join(d, TAG_FILES[0])}: empty tag name at line {names.index('') + 1}")
    zh_path = os.path.join(d, TAG_FILES[1])
    zh = [s.strip() for s in _lines(zh_path)] if os.path.exists(zh_path) else []
    zh = zh[:len(names)] if len(zh) >= len(names) else zh + [None] * (len(names) - len(zh))
    th_path = os.path.join(d, TAG_FILES[2])
    th = _floats(th_path, _lines(th_path)) if os.path.exists(th_path) else []
    if len(th) > len(names):
        raise ExportError(f"{th_path} has {len(th)} thresholds for {len(names)} tags")
    th = th + [DEFAULT_THRESHOLD] * (len(names) - len(th))
    return Vocabulary(names, [z if z else None for z in zh], th)


def load_tag_file(path: str, thresholds_path: str | None = None) -> Vocabulary:
    """A JSON list (strings, or objects with name / nameZh / threshold) or a text file, one tag a line."""
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ExportError(f"tag list file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path}: invalid JSON ({exc})") from None
        if isinstance(data, dict) and "tags" in data:
            data = data["tags"]
        elif isinstance(data, dict) and "closed_set" in data.get("ram_plus", {}):
            # the upstream-tiny reference's config.json
            cs = data["ram_plus"]["closed_set"]
            data = [{"name": n, "nameZh": z, "threshold": t}
                    for n, z, t in zip(cs["tags"], cs["tags_chinese"], cs["class_threshold"])]
        if not isinstance(data, list) or not data:
            raise ExportError(f"{path}: expected a non-empty JSON list of tags")
        names, zh, th = [], [], []
        for i, e in enumerate(data):
            if isinstance(e, str):
                e = {"name": e}
            if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"].strip():
                raise ExportError(f"{path}: entry {i} has no 'name'")
            names.append(e["name"].strip())
            z = e.get("nameZh")
            zh.append(z.strip() if isinstance(z, str) and z.strip() else None)
            t = e.get("threshold", DEFAULT_THRESHOLD)
            if not isinstance(t, (int, float)) or not 0 <= t <= 1:
                raise ExportError(f"{path}: entry {i} ({e['name']}): threshold must be a number in [0, 1]")
            th.append(float(t))
    else:
        names = [s.strip() for s in _lines(path) if s.strip()]
        if not names:
            raise ExportError(f"{path}: no tags")
        zh = [None] * len(names)
        th = [DEFAULT_THRESHOLD] * len(names)
    if thresholds_path:
        t2 = _floats(thresholds_path, _lines(thresholds_path))
        if len(t2) != len(names):
            raise ExportError(f"{thresholds_path} has {len(t2)} thresholds for {len(names)} tags")
        th = t2
    dup = len(names) - len(set(names))
    if dup:
        raise ExportError(f"{path}: {dup} duplicate tag name(s)")
    return Vocabulary(names, zh, th)
