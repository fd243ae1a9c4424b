import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif']);

/**
 * Expands the CLI's path arguments: files are kept as given (whatever their extension, so a
 * user can force one), folders contribute their image files, sorted, recursively on request.
 * Symbolic links are followed, to files and to folders; a folder reached twice in one walk
 * (a link back up the tree, or two links to one place) is read once, so loops end.
 */
export async function collectImageFiles(inputs: readonly string[], recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  for (const input of inputs) {
    const info = await stat(input).catch(() => null);
    if (!info) throw new Error(`${input}: no such file or folder`);
    if (info.isFile()) out.push(input);
    else if (info.isDirectory()) out.push(...(await imagesIn(input, recursive, new Set())));
  }
  return out;
}

/** `seen`: real paths of the folders this walk has read. */
async function imagesIn(dir: string, recursive: boolean, seen: Set<string>): Promise<string[]> {
  const real = await realpath(dir);
  if (seen.has(real)) return [];
  seen.add(real);
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const full = path.join(dir, e.name);
    // a link counts as what it points to; a broken one is skipped
    const kind = e.isSymbolicLink() ? await stat(full).catch(() => null) : e;
    if (!kind) continue;
    if (kind.isDirectory() && recursive) out.push(...(await imagesIn(full, true, seen)));
    else if (kind.isFile() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) out.push(full);
  }
  return out;
}
