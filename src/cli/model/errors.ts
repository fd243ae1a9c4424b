/**
 * Errors of `omnitag model install`: a stable code each, and the process exit status it ends
 * with, so scripts can tell a missing file from a network failure without reading messages.
 */
export const INSTALL_EXIT_CODES = {
  DOWNLOAD_NOT_FOUND: 3,
  DOWNLOAD_HTTP_ERROR: 4,
  NETWORK_ERROR: 5,
  CHECKSUM_MISMATCH: 6,
  DISK_ERROR: 7,
  PYTHON_MISSING: 8,
  EXPORT_FAILED: 9,
  PACK_INVALID: 10,
  CHECKPOINT_NOT_FOUND: 11,
} as const;

export type InstallErrorCode = keyof typeof INSTALL_EXIT_CODES;

export class InstallError extends Error {
  readonly exitCode: number;
  constructor(
    readonly code: InstallErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'InstallError';
    this.exitCode = INSTALL_EXIT_CODES[code];
  }
}

/** File-system error codes that mean "this disk or folder cannot take it" (not a bug of ours). */
const DISK_CODES = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EISDIR', 'ENOTDIR', 'EFBIG', 'EMFILE']);

/** A file-system failure as DISK_ERROR naming the path; anything else is rethrown as it is. */
export function asDiskError(err: unknown, file: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && DISK_CODES.has(code)) {
    const why = code === 'ENOSPC' || code === 'EDQUOT' ? 'no space left' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'not writable' : code;
    return new InstallError('DISK_ERROR', `cannot write ${file}: ${why} (${code})`, { file, errno: code });
  }
  return err;
}
