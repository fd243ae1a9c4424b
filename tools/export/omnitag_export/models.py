"""PyTorch modules of RAM++ inference (image encoder, re-weighting + tag decoder) and of
CLIP's text encoder, with parameter names of the upstream checkpoints.

Written from the RAM++ paper, the Swin Transformer paper and CLIP's published
architecture; shapes and names follow the official state dicts so that they load 1:1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- dims

@dataclass
class SwinDims:
    image_size: int = 384
    patch: int = 4
    window: int = 12
    embed_dim: int = 192
    depths: list = field(default_factory=lambda: [2, 2, 18, 2])
    heads: list = field(default_factory=lambda: [6, 12, 24, 48])
    mlp_ratio: float = 4.0


@dataclass
class DecoderDims:
    embed_dim: int = 512          # E: image_proj output, label embedding width
    hidden: int = 768
    layers: int = 2
    heads: int = 4                # not in the weights
    intermediate: int = 3072


@dataclass
class TextDims:
    width: int = 512
    layers: int = 12
    heads: int = 8
    context: int = 77
    vocab: int = 49408
    embed_dim: int = 512


@dataclass
class PackDims:
    swin: SwinDims = field(default_factory=SwinDims)
    decoder: DecoderDims = field(default_factory=DecoderDims)
    text: TextDims = field(default_factory=TextDims)

    @property
    def image_tokens(self) -> int:
        return stage_resolutions(self.swin)[-1] ** 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)


def stage_resolutions(s: SwinDims) -> list:
    r = s.image_size // s.patch
    out = []
    for i in range(len(s.depths)):
        out.append(r)
        if i < len(s.depths) - 1:
            r //= 2
    return out


def full_dims() -> PackDims:
    return PackDims()


def tiny_dims() -> PackDims:
    # 96 px, window 3: stages 24/12/6/3 -> shifted windows in stages 1-3, a single
    # unshifted window in stage 4 (the Swin-L/384 case).
    return PackDims(
        swin=SwinDims(image_size=96, patch=4, window=3, embed_dim=12, depths=[2, 2, 2, 2], heads=[1, 2, 4, 8]),
        decoder=DecoderDims(embed_dim=64, hidden=32, layers=2, heads=4, intermediate=64),
        text=TextDims(width=16, layers=2, heads=2, context=77, vocab=49408, embed_dim=64),
    )


# ----------------------------------------------------------------------------- Swin

def window_partition(x: torch.Tensor, h: int, w: int, ws: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(-1, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(win: torch.Tensor, h: int, w: int, ws: int) -> torch.Tensor:
    c = win.shape[-1]
    x = win.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])          # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]              # N, N


def shifted_window_mask(res: int, ws: int, shift: int) -> torch.Tensor:
    img = torch.zeros(1, res, res, 1)
    cnt = 0
    bands = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for hs in bands:
        for wsl in bands:
            img[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img, res, res, ws).squeeze(-1)         # nW, N
    diff = mw[:, None, :] - mw[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, ws: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(ws), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(-1, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(-1, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, res: int, heads: int, window: int, shifted: bool, mlp_ratio: float):
        super().__init__()
        # timm's rule: a stage no larger than the window is one window, never shifted.
        if res <= window:
            window, shift = res, 0
        else:
            shift = window // 2 if shifted else 0
        self.res, self.window, self.shift = res, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(res, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, ws, s = self.res, self.window, self.shift
        c = x.shape[-1]
        h = self.norm1(x).view(-1, r, r, c)
        if s:
            h = torch.roll(h, shifts=(-s, -s), dims=(1, 2))
        h = window_reverse(self.attn(window_partition(h, r, r, ws), self.attn_mask), r, r, ws)
        if s:
            h = torch.roll(h, shifts=(s, s), dims=(1, 2))
        x = x + h.reshape(-1, r * r, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int, res: int):
        super().__init__()
        self.res = res
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        r, c = self.res, x.shape[-1]
        x = x.view(-1, r, r, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(-1, (r // 2) * (r // 2), 4 * c)))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinStage(nn.Module):
    def __init__(self, dim, res, depth, heads, window, mlp_ratio, downsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            [SwinBlock(dim, res, heads, window, shifted=(j % 2 == 1), mlp_ratio=mlp_ratio) for j in range(depth)])
        self.downsample = PatchMerging(dim, res) if downsample else None

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.downsample(x) if self.downsample is not None else x


class SwinEncoder(nn.Module):
    """Swin v1 backbone; output = [mean token, final grid tokens row-major] after the last LayerNorm."""

    def __init__(self, d: SwinDims):
        super().__init__()
        self.patch_embed = PatchEmbed(d.patch, d.embed_dim)
        res = stage_resolutions(d)
        n = len(d.depths)
        self.layers = nn.ModuleList([
            SwinStage(d.embed_dim * 2 ** i, res[i], d.depths[i], d.heads[i], d.window, d.mlp_ratio, i < n - 1)
            for i in range(n)])
        self.num_features = d.embed_dim * 2 ** (n - 1)
        self.norm = nn.LayerNorm(self.num_features)

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        return torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)


class ImageEncoder(nn.Module):
    """pixel_values [B,3,S,S] -> image_embeds [B,T,E]."""

    def __init__(self, dims: PackDims):
        super().__init__()
        self.visual_encoder = SwinEncoder(dims.swin)
        self.image_proj = nn.Linear(self.visual_encoder.num_features, dims.decoder.embed_dim)

    def forward(self, pixel_values):
        return self.image_proj(self.visual_encoder(pixel_values))


# ----------------------------------------------------------------------------- tag decoder

class CrossAttention(nn.Module):
    def __init__(self, hidden: int, kv_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_dim, hidden)
        self.value = nn.Linear(kv_dim, hidden)

    def _split(self, x):
        return x.view(x.shape[0], x.shape[1], self.heads, -1).permute(0, 2, 1, 3)

    # with_probs: also return the attention probabilities [B,heads,C,T] (the heat-map graph).
    # Submodules are still called through __call__, so the exported node names, and with them
    # tag_decoder.onnx, are the same with or without the heat-map path.
    def forward(self, x, ctx, with_probs: bool = False):
        q, k, v = self._split(self.query(x)), self._split(self.key(ctx)), self._split(self.value(ctx))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        probs = scores.softmax(dim=-1)
        out = (probs @ v).permute(0, 2, 1, 3)
        out = out.reshape(out.shape[0], out.shape[1], -1)
        return (out, probs) if with_probs else out


class DenseNorm(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=1e-12)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class CrossAttentionBlock(nn.Module):
    def __init__(self, hidden, kv_dim, heads):
        super().__init__()
        self.self = CrossAttention(hidden, kv_dim, heads)
        self.output = DenseNorm(hidden, hidden)

    def forward(self, x, ctx, with_probs: bool = False):
        if with_probs:
            a, probs = self.self(x, ctx, with_probs=True)
            return self.output(a, x), probs
        return self.output(self.self(x, ctx), x)


class Intermediate(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.dense = nn.Linear(hidden, inter)

    def forward(self, x):
        return F.gelu(self.dense(x))


class DecoderLayer(nn.Module):
    """BERT layer without self-attention: tags attend to the image, then a GELU MLP."""

    def __init__(self, d: DecoderDims):
        super().__init__()
        self.crossattention = CrossAttentionBlock(d.hidden, d.embed_dim, d.heads)
        self.intermediate = Intermediate(d.hidden, d.intermediate)
        self.output = DenseNorm(d.intermediate, d.hidden)

    def forward(self, x, ctx, with_probs: bool = False):
        if with_probs:
            a, probs = self.crossattention(x, ctx, with_probs=True)
            return self.output(self.intermediate(a), a), probs
        a = self.crossattention(x, ctx)
        return self.output(self.intermediate(a), a)


class _Encoder(nn.Module):
    def __init__(self, d: DecoderDims):
        super().__init__()
        self.layer = nn.ModuleList([DecoderLayer(d) for _ in range(d.layers)])


class TaggingHead(nn.Module):
    def __init__(self, d: DecoderDims):
        super().__init__()
        self.encoder = _Encoder(d)

    def forward(self, x, ctx):
        for layer in self.encoder.layer:
            x = layer(x, ctx)
        return x

    def forward_with_attention(self, x, ctx):
        """-> (hidden states, per layer the attention probabilities [B,heads,C,T])."""
        maps = []
        for layer in self.encoder.layer:
            x, probs = layer(x, ctx, with_probs=True)
            maps.append(probs)
        return x, maps


class TagDecoder(nn.Module):
    """(image_embeds [B,T,E], label_embeds [C,D,E], label_mask bool [C,D]) ->
    (logits [B,C], description_weights [B,C,D]).

    The re-weighting is two batched matmuls, never a [B,C,D,E] product. Masked
    descriptions get -inf before the softmax; every tag needs one real description.
    """

    def __init__(self, dims: PackDims):
        super().__init__()
        d = dims.decoder
        self.reweight_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.wordvec_proj = nn.Linear(d.embed_dim, d.hidden)
        self.tagging_head = TaggingHead(d)
        self.fc = nn.Linear(d.hidden, 1)

    def _queries(self, image_embeds, label_embeds, label_mask):
        c, dd, e = label_embeds.shape
        g = image_embeds[:, 0, :]
        g = g / g.norm(dim=-1, keepdim=True)
        # 'be,cde->bcd' as one matmul over the C*D rows
        scores = (self.reweight_scale.exp() * g) @ label_embeds.reshape(-1, e).t()
        scores = scores.reshape(-1, c, dd)
        scores = torch.where(label_mask.unsqueeze(0), scores, torch.full_like(scores, float("-inf")))
        weights = scores.softmax(dim=-1)
        # 'bcd,cde->bce' as a matmul batched over C
        q = (weights.transpose(0, 1) @ label_embeds).transpose(0, 1)
        return F.relu(self.wordvec_proj(q)), weights

    def forward(self, image_embeds, label_embeds, label_mask):
        x, weights = self._queries(image_embeds, label_embeds, label_mask)
        x = self.tagging_head(x, image_embeds)
        return self.fc(x).squeeze(-1), weights

    def forward_with_attention(self, image_embeds, label_embeds, label_mask):
        """forward() plus cross_attention [B,C,L,T]: per decoder layer, each tag's attention
        over the image tokens (token 0 = the global/CLS token, then the grid row by row),
        averaged over the heads. The logits are computed by the same operations as forward()."""
        x, weights = self._queries(image_embeds, label_embeds, label_mask)
        x, maps = self.tagging_head.forward_with_attention(x, image_embeds)
        attention = torch.stack([p.mean(dim=1) for p in maps], dim=2)
        return self.fc(x).squeeze(-1), weights, attention


class HeatmapTagDecoder(nn.Module):
    """The tag decoder with its cross-attention as a third output (the heat-map graph).
    Shares the decoder's parameters; nothing is copied."""

    def __init__(self, decoder: TagDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, image_embeds, label_embeds, label_mask):
        return self.decoder.forward_with_attention(image_embeds, label_embeds, label_mask)


# ----------------------------------------------------------------------------- CLIP text

class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, mask):
        n, l, w = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(n, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q / math.sqrt(self.head_dim)) @ k.transpose(-2, -1) + mask
        out = (attn.softmax(dim=-1) @ v).permute(0, 2, 1, 3).reshape(n, l, w)
        return self.out_proj(out)


class QuickGeluMlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        h = self.c_fc(x)
        return self.c_proj(h * torch.sigmoid(1.702 * h))


class ResidualBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = CausalSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = QuickGeluMlp(width)
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualBlock(width, heads) for _ in range(layers)])


class TextEncoder(nn.Module):
    """input_ids i64 [N,L] (L <= context) -> L2-normalised text_embeds [N,E].

    Features are read at the end token (the largest id). Attention is causal, so
    padding after the end token never changes them and L may be shortened.
    """

    def __init__(self, d: TextDims):
        super().__init__()
        self.token_embedding = nn.Embedding(d.vocab, d.width)
        self.positional_embedding = nn.Parameter(torch.zeros(d.context, d.width))
        self.transformer = _Transformer(d.width, d.layers, d.heads)
        self.ln_final = nn.LayerNorm(d.width)
        self.text_projection = nn.Parameter(torch.zeros(d.width, d.embed_dim))
        mask = torch.full((d.context, d.context), float("-inf")).triu(1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, input_ids):
        l = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.positional_embedding[:l]
        mask = self.causal_mask[:l, :l]
        for blk in self.transformer.resblocks:
            x = blk(x, mask)
        x = self.ln_final(x)
        eot = input_ids.argmax(dim=-1)
        x = torch.gather(x, 1, eot.view(-1, 1, 1).expand(-1, 1, x.shape[-1]))[:, 0]
        x = x @ self.text_projection
        return x / x.norm(dim=-1, keepdim=True)


# ----------------------------------------------------------------------------- building

@dataclass
class Modules:
    dims: PackDims
    image_encoder: ImageEncoder
    tag_decoder: TagDecoder
    text_encoder: TextEncoder


def build_modules(dims: PackDims) -> Modules:
    return Modules(dims, ImageEncoder(dims).eval(), TagDecoder(dims).eval(), TextEncoder(dims.text).eval())


def random_init_(mods: Modules, seed: int) -> Modules:
    """Seeded weights that keep activations in range, so random packs give varied logits."""
    gen = torch.Generator().manual_seed(seed)

    def normal(t, std):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=gen) * std)

    for root in (mods.image_encoder, mods.tag_decoder, mods.text_encoder):
        for name, p in root.named_parameters():
            if p.dim() >= 2 and not name.endswith("relative_position_bias_table"):
                fan_in = p.shape[1] if p.dim() == 2 else p[0].numel()
                if name.endswith("token_embedding.weight") or name.endswith("positional_embedding"):
                    normal(p, 0.5)
                elif name == "wordvec_proj.weight":
                    normal(p, 1.0)  # its input is a unit vector: keep the tag signal O(1)
                elif name == "fc.weight":
                    normal(p, 4 * fan_in ** -0.5)
                else:
                    normal(p, fan_in ** -0.5)
            elif name.endswith("relative_position_bias_table"):
                normal(p, 0.2)
            elif "norm" in name.lower() or name.split(".")[-2:-1] in (["ln_1"], ["ln_2"], ["ln_final"]):
                with torch.no_grad():
                    base = 1.0 if name.endswith("weight") else 0.0
                    p.copy_(base + torch.randn(p.shape, generator=gen) * 0.1)
            elif name == "reweight_scale":
                with torch.no_grad():
                    p.fill_(math.log(1 / 0.07))
            else:
                normal(p, 0.02)
    return mods


def calibrate_bias_(mods: Modules, label_embeds: torch.Tensor, label_mask: torch.Tensor, pixels: torch.Tensor) -> None:
    """Centre random-weight logits on 0, so thresholds select some tags but not all."""
    with torch.no_grad():
        logits, _ = mods.tag_decoder(mods.image_encoder(pixels), label_embeds, label_mask)
        mods.tag_decoder.fc.bias.sub_(logits.mean())


def dims_from_manifest(manifest: dict) -> PackDims:
    """The sizes of a pack's graphs, from its manifest.json (to rebuild the same modules)."""
    d = manifest["dims"]
    sw, tx = d["swin"], d["text"]
    return PackDims(
        swin=SwinDims(image_size=manifest["image"]["size"], patch=sw["patch"], window=sw["window"],
                      embed_dim=sw["embedDim"], depths=list(sw["depths"]), heads=list(sw["heads"])),
        decoder=DecoderDims(embed_dim=d["embedDim"], hidden=d["decoderHidden"], layers=d["decoderLayers"],
                            heads=d["decoderHeads"], intermediate=d.get("decoderIntermediate", 4 * d["decoderHidden"])),
        text=TextDims(width=tx["width"], layers=tx["layers"], heads=tx["heads"], context=d["textContext"],
                      vocab=d["textVocabSize"], embed_dim=d["embedDim"]),
    )
