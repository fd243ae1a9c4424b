"""Loading the official checkpoints into our modules, with every size read from the weights."""
from __future__ import annotations

import math
import os
import re
import zipfile

import torch

from .errors import ExportError
from .models import DecoderDims, Modules, PackDims, SwinDims, TextDims, build_modules

REBUILT_BUFFERS = ("relative_position_index", "attn_mask")
CLIP_NON_TEXT = re.compile(r"^(visual\..*|logit_scale|input_resolution|context_length|vocab_size)$")


def _describe(keys, limit=12) -> str:
    keys = sorted(keys)
    more = f" (and {len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def read_torch_file(path: str, what: str):
    """torch.load / torch.jit.load with messages that name the file and the problem."""
    if not os.path.exists(path):
        raise ExportError(f"{what} not found: {path}")
    if os.path.getsize(path) == 0:
        raise ExportError(f"{what} is empty: {path}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise ExportError(f"{what} is truncated or corrupt ({exc}): {path}") from exc
        if any(n.endswith("constants.pkl") for n in names):
            try:
                return torch.jit.load(path, map_location="cpu").state_dict()
            except Exception as exc:  # noqa: BLE001
                raise ExportError(f"{what} is a TorchScript archive that cannot be read ({exc}): {path}") from exc
    try:
        return torch.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{what} is truncated or not a PyTorch checkpoint ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}): {path}") from exc


# ----------------------------------------------------------------------------- RAM++

def ram_state_dict(obj, path: str) -> dict:
    sd = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or "visual_encoder.patch_embed.proj.weight" not in sd:
        raise ExportError(f"{path} does not look like a RAM++ checkpoint: expected a state dict (under 'model') "
                          "with 'visual_encoder.patch_embed.proj.weight'")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise ExportError(f"{path}: entry '{k}' is not a tensor")
        # Older upstream checkpoints call the tagging head 'vision_multi' (upstream renames it too).
        out[k.replace("vision_multi", "tagging_head")] = v
    return out


def _need(sd: dict, key: str, path: str, ndim: int | None = None) -> torch.Tensor:
    if key not in sd:
        raise ExportError(f"{path}: missing key '{key}'")
    t = sd[key]
    if ndim is not None and t.dim() != ndim:
        raise ExportError(f"{path}: '{key}' has shape {list(t.shape)}, expected {ndim} dimensions")
    return t


def ram_dims(sd: dict, path: str, decoder_heads: int = 4, image_size: int | None = None) -> PackDims:
    pe = _need(sd, "visual_encoder.patch_embed.proj.weight", path, 4)
    embed, patch = pe.shape[0], pe.shape[2]
    n_stages = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"visual_encoder\.layers\.(\d+)\.", k)))
    depths, heads = [], []
    for i in range(n_stages):
        blocks = {int(m.group(1)) for k in sd if (m := re.match(rf"visual_encoder\.layers\.{i}\.blocks\.(\d+)\.", k))}
        if not blocks:
            raise ExportError(f"{path}: stage {i} of the Swin encoder has no blocks")
        depths.append(max(blocks) + 1)
        table = _need(sd, f"visual_encoder.layers.{i}.blocks.0.attn.relative_position_bias_table", path, 2)
        heads.append(table.shape[1])
    t0 = sd["visual_encoder.layers.0.blocks.0.attn.relative_position_bias_table"]
    window = (math.isqrt(t0.shape[0]) + 1) // 2
    if (2 * window - 1) ** 2 != t0.shape[0]:
        raise ExportError(f"{path}: relative_position_bias_table has {t0.shape[0]} rows, not (2*window-1)^2")
    mask = sd.get("visual_encoder.layers.0.blocks.1.attn_mask")
    if mask is not None:
        side = math.isqrt(mask.shape[0]) * window * patch
    elif image_size:
        side = image_size
    else:
        side = {12: 384, 7: 224}.get(window)
        if side is None:
            raise ExportError(f"{path}: cannot tell the image size (no attn_mask); pass --image-size")
    if image_size and image_size != side:
        raise ExportError(f"{path}: the checkpoint is for {side} px images, not {image_size}")
    proj = _need(sd, "image_proj.weight", path, 2)
    wv = _need(sd, "wordvec_proj.weight", path, 2)
    n_layers = 1 + max((int(m.group(1)) for k in sd
                        if (m := re.match(r"tagging_head\.encoder\.layer\.(\d+)\.", k))), default=-1)
    if n_layers == 0:
        raise ExportError(f"{path}: missing key 'tagging_head.encoder.layer.0.*' (no tag decoder layers)")
    inter = _need(sd, "tagging_head.encoder.layer.0.intermediate.dense.weight", path, 2)
    hidden = wv.shape[0]
    if hidden % decoder_heads:
        raise ExportError(f"{path}: decoder hidden size {hidden} is not divisible by --decoder-heads {decoder_heads}")
    sw = SwinDims(image_size=side, patch=patch, window=window, embed_dim=embed, depths=depths, heads=heads)
    res = side // patch
    for i in range(n_stages):
        if res % min(window, res):
            raise ExportError(f"{path}: stage {i} grid {res} is not a multiple of window {window}")
        res //= 2 if i < n_stages - 1 else 1
    dd = DecoderDims(embed_dim=proj.shape[0], hidden=hidden, layers=n_layers, heads=decoder_heads,
                     intermediate=inter.shape[0])
    return PackDims(swin=sw, decoder=dd, text=TextDims(embed_dim=proj.shape[0]))


def _key_problems(expected: dict, sd: dict, ignorable) -> tuple:
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected and not ignorable(k)]
    shapes = [f"'{k}' is {list(sd[k].shape)} in the file, the model needs {list(t.shape)}"
              for k, t in expected.items() if k in sd and tuple(sd[k].shape) != tuple(t.shape)]
    return missing, unexpected, shapes


def _raise_key_problems(path, what, missing, unexpected, shapes):
    parts = []
    if missing:
        parts.append(f"missing key(s) for the {what}: {_describe(missing)}")
    if unexpected:
        parts.append(f"unexpected key(s) not used by the {what}: {_describe(unexpected)}")
    if shapes:
        parts.append("shape mismatch: " + "; ".join(shapes[:6]))
    if parts:
        raise ExportError(f"{path}: " + "; ".join(parts))


def _copy_into(module: torch.nn.Module, sd: dict) -> None:
    with torch.no_grad():
        for k, t in module.state_dict().items():
            t.copy_(sd[k].to(t.dtype))


def _check_rebuilt(mods: Modules, sd: dict, path: str) -> set:
    """relative_position_index / attn_mask are rebuilt; when present they must agree."""
    ours = {}
    for name, buf in mods.image_encoder.named_buffers():
        if name.endswith(REBUILT_BUFFERS) and buf is not None:
            ours[name] = buf
    seen = set()
    for k, v in sd.items():
        if not k.endswith(REBUILT_BUFFERS):
            continue
        seen.add(k)
        mine = ours.get(k)
        if mine is None:
            raise ExportError(f"{path}: unexpected key '{k}' (this block has no such buffer: "
                              "the window, shift or image size differs)")
        if tuple(v.shape) != tuple(mine.shape) or not torch.equal(v.to(mine.dtype), mine):
            raise ExportError(f"{path}: '{k}' differs from the rebuilt buffer (wrong window or image size)")
    return seen


def load_ram(path: str, mods: Modules, sd: dict) -> torch.Tensor:
    """Loads image encoder + decoder weights; returns label_embed [C*D, E] (float32)."""
    expected = {**mods.image_encoder.state_dict(), **mods.tag_decoder.state_dict()}
    expected["label_embed"] = torch.empty(0, mods.dims.decoder.embed_dim)
    missing, unexpected, shapes = _key_problems(expected, sd, lambda k: k.endswith(REBUILT_BUFFERS))
    shapes = [x for x in shapes if not x.startswith("'label_embed'")]
    if "label_embed" in sd and (sd["label_embed"].dim() != 2 or sd["label_embed"].shape[1] != mods.dims.decoder.embed_dim):
        shapes.append(f"'label_embed' is {list(sd['label_embed'].shape)}, rows must be "
                      f"{mods.dims.decoder.embed_dim} wide")
    _raise_key_problems(path, "RAM++ model", missing, unexpected, shapes)
    _check_rebuilt(mods, sd, path)
    _copy_into(mods.image_encoder, sd)
    _copy_into(mods.tag_decoder, sd)
    return sd["label_embed"].float()


# ----------------------------------------------------------------------------- CLIP

def clip_state_dict(obj, path: str) -> dict:
    sd = obj
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or "token_embedding.weight" not in sd:
        raise ExportError(f"{path} does not look like an OpenAI CLIP model: no 'token_embedding.weight'")
    return dict(sd)


def clip_text_dims(sd: dict, path: str, heads: int | None = None) -> TextDims:
    tok = _need(sd, "token_embedding.weight", path, 2)
    pos = _need(sd, "positional_embedding", path, 2)
    proj = _need(sd, "text_projection", path, 2)
    layers = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))),
                     default=-1)
    if layers == 0:
        raise ExportError(f"{path}: missing key 'transformer.resblocks.0.*'")
    width = tok.shape[1]
    if heads is None:
        heads = width // 64  # CLIP's own rule
        if heads == 0:
            raise ExportError(f"{path}: text width {width} < 64; pass --text-heads")
    if width % heads:
        raise ExportError(f"{path}: text width {width} is not divisible by {heads} heads")
    return TextDims(width=width, layers=layers, heads=heads, context=pos.shape[0], vocab=tok.shape[0],
                    embed_dim=proj.shape[1])


def load_clip_text(path: str, mods: Modules, sd: dict) -> None:
    expected = mods.text_encoder.state_dict()
    missing, unexpected, shapes = _key_problems(expected, sd, lambda k: bool(CLIP_NON_TEXT.match(k)))
    _raise_key_problems(path, "text encoder", missing, unexpected, shapes)
    _copy_into(mods.text_encoder, sd)


# ----------------------------------------------------------------------------- both

def load_official(ram_path: str, clip_path: str, decoder_heads: int = 4, text_heads: int | None = None,
                  image_size: int | None = None):
    """Returns (modules, label_embed [C*D,E]) with every size read from the two files."""
    ram_sd = ram_state_dict(read_torch_file(ram_path, "RAM++ checkpoint"), ram_path)
    dims = ram_dims(ram_sd, ram_path, decoder_heads, image_size)
    clip_sd = clip_state_dict(read_torch_file(clip_path, "CLIP model"), clip_path)
    dims.text = clip_text_dims(clip_sd, clip_path, text_heads)
    if dims.text.embed_dim != dims.decoder.embed_dim:
        raise ExportError(f"CLIP text embeddings are {dims.text.embed_dim} wide but RAM++ expects "
                          f"{dims.decoder.embed_dim} ({clip_path})")
    mods = build_modules(dims)
    label_embed = load_ram(ram_path, mods, ram_sd)
    load_clip_text(clip_path, mods, clip_sd)
    return mods, label_embed
