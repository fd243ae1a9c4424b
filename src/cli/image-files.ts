import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif']);

/**
 * Expands the CLI's path arguments: files are kept as given (whatever their extension, so a
 * user can force one), folders contribute their image files, sorted, recursively on request.
 */
export async function collectImageFiles(inputs: readonly string[], recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  for (const input of inputs) {
    const info = await stat(input).catch(() => null);
    if (!info) throw new Error(`${input}: no such file or folder`);
    if (info.isFile()) out.push(input);
    else if (info.isDirectory()) out.push(...(await imagesIn(input, recursive)));
  }
  return out;
}

async function imagesIn(dir: string, recursive: boolean): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory() && recursive) out.push(...(await imagesIn(full, true)));
    else if (e.isFile() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) out.push(full);
  }
  return out;
}
