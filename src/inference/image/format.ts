/**
 * Image format detection from content (magic numbers). File names and declared MIME
 * types are ignored: only the bytes decide, and only formats we accept reach the decoder.
 */

/** Formats the preprocessor decodes (names as sharp reports them; AVIF is read by the HEIF loader). */
export type AcceptedFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'heif';

export type SniffResult =
  | { kind: 'accepted'; format: AcceptedFormat; /** e.g. 'avif' for HEIF files with an AVIF brand */ detail?: string }
  | { kind: 'refused'; name: string; reason: string }
  | { kind: 'unknown' };

const startsWith = (b: Uint8Array, sig: readonly number[], at = 0) => sig.every((v, i) => b[at + i] === v);
const ascii = (b: Uint8Array, from: number, to: number) => String.fromCharCode(...b.subarray(from, Math.min(to, b.length)));

const AVIF_BRANDS = new Set(['avif', 'avis']);
const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1', 'miaf']);

/** Looks at the first bytes (and, for text, the first kilobyte) of `bytes`. */
export function sniffImageFormat(bytes: Uint8Array): SniffResult {
  const b = bytes;
  if (startsWith(b, [0xff, 0xd8, 0xff])) return { kind: 'accepted', format: 'jpeg' };
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { kind: 'accepted', format: 'png' };
  if (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a') return { kind: 'accepted', format: 'gif' };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return { kind: 'accepted', format: 'webp' };
  if (startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])) return { kind: 'accepted', format: 'tiff' };
  if (startsWith(b, [0x49, 0x49, 0x2b, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2b])) return { kind: 'accepted', format: 'tiff' };
  if (ascii(b, 4, 8) === 'ftyp') {
    // ISO base media file: the major brand, then compatible brands, say what it holds.
    const boxSize = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    const brands = [ascii(b, 8, 12)];
    for (let at = 16; at + 4 <= Math.min(boxSize, b.length, 64); at += 4) brands.push(ascii(b, at, at + 4));
    if (brands.some((x) => AVIF_BRANDS.has(x))) return { kind: 'accepted', format: 'heif', detail: 'avif' };
    if (brands.some((x) => HEIF_BRANDS.has(x))) return { kind: 'accepted', format: 'heif', detail: 'heic' };
    return { kind: 'refused', name: `ISO media (${brands[0]!.trim()})`, reason: 'video and other ISO media files are not images' };
  }
  if (ascii(b, 0, 2) === 'BM') return { kind: 'refused', name: 'BMP', reason: 'BMP is not supported' };
  if (ascii(b, 0, 5) === '%PDF-') return { kind: 'refused', name: 'PDF', reason: 'documents are not images' };
  if (ascii(b, 0, 4) === '8BPS') return { kind: 'refused', name: 'PSD', reason: 'Photoshop documents are not supported' };
  if (startsWith(b, [0x00, 0x00, 0x01, 0x00])) return { kind: 'refused', name: 'ICO', reason: 'icons are not supported' };
  if (startsWith(b, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20])) return { kind: 'refused', name: 'JPEG 2000', reason: 'JPEG 2000 is not supported' };
  if (startsWith(b, [0xff, 0x0a]) || startsWith(b, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20])) {
    return { kind: 'refused', name: 'JPEG XL', reason: 'JPEG XL is not supported' };
  }
  if (looksLikeMarkup(b)) {
    const head = ascii(b, 0, 1024).toLowerCase();
    if (head.includes('<svg')) return { kind: 'refused', name: 'SVG', reason: 'vector images (SVG) are not accepted' };
    return { kind: 'refused', name: 'XML/HTML', reason: 'markup documents are not images' };
  }
  return { kind: 'unknown' };
}

/** Text that starts with '<' after an optional UTF-8 BOM and white space. */
function looksLikeMarkup(b: Uint8Array): boolean {
  let i = startsWith(b, [0xef, 0xbb, 0xbf]) ? 3 : 0;
  while (i < b.length && i < 256 && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d)) i++;
  return b[i] === 0x3c;
}
