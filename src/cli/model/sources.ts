/**
 * Where the official checkpoints come from, and what they must hash to. Every value can be
 * replaced (flags, or the environment variables named in src/cli/model/command.ts) for mirrors
 * and air-gapped copies.
 */
export interface CheckpointSource {
  /** Short name used in messages and flags. */
  readonly id: 'ram' | 'clip';
  readonly fileName: string;
  readonly url: string;
  readonly sha256: string;
  /** About its size in bytes: the disk estimate printed before anything is fetched. */
  readonly approxBytes: number;
}

/**
 * RAM++ (Swin-L, 14M images): the file upstream's README links, at the model repository's
 * commit that uploaded it (so the bytes cannot change under the pinned hash). The SHA-256 and
 * size are those of that commit's Git LFS pointer.
 */
export const RAM_PLUS: CheckpointSource = Object.freeze({
  id: 'ram',
  fileName: 'ram_plus_swin_large_14m.pth',
  url: 'https://huggingface.co/xinyu1205/recognize-anything-plus-model/resolve/6afd703f04b23e1c18d4c7d9882c4f5f954848f8/ram_plus_swin_large_14m.pth',
  sha256: '497c178836ba66698ca226c7895317e6e800034be986452dbd2593298d50e87d',
  approxBytes: 3_010_210_801, // exact: the LFS pointer's size
});

/** OpenAI CLIP ViT-B/16, the file `clip.load("ViT-B/16")` downloads; its URL carries its SHA-256. */
export const CLIP_VIT_B16: CheckpointSource = Object.freeze({
  id: 'clip',
  fileName: 'ViT-B-16.pt',
  url: 'https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt',
  sha256: '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f',
  approxBytes: 352_000_000, // ≈335 MiB; not measured here (the file cannot be fetched from this project's machines)
});

export const SHA256_HEX = /^[0-9a-f]{64}$/;
