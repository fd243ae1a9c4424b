/**
 * The export tool's Python: found, checked for its packages, and, where it falls short, what
 * exactly to install on this platform.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/**
 * Debian/Ubuntu packages of the export tool (the same list as .ci/run); OpenBLAS because the
 * reference BLAS makes the full-size export take hours (docs/export.md).
 */
export const DEBIAN_PACKAGES = 'python3-torch python3-onnx python3-numpy python3-pil python3-regex libopenblas0-pthread';

/** `--python`'s default: OMNITAG_PYTHON, else Debian's interpreter (where its torch lives), else python3 on PATH. */
export function defaultPython(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

export type PythonCheck = { ok: true; torch: string } | { ok: false; problem: string };

/** Runs `python -c "import torch, onnx, numpy, PIL"`; never throws. */
export function checkPython(python: string, timeoutMs = 120_000): Promise<PythonCheck> {
  const probe = 'import torch, onnx, numpy, PIL; print(torch.__version__)';
  return new Promise((resolve) => {
    execFile(python, ['-c', probe], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ ok: true, torch: stdout.trim() });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return resolve({ ok: false, problem: `${python} was not found` });
      if (code === 'EACCES') return resolve({ ok: false, problem: `${python} cannot be run (permission denied)` });
      const last = stderr.trim().split('\n').pop() ?? '';
      const missing = /No module named '([^']+)'/.exec(last)?.[1];
      resolve({ ok: false, problem: missing ? `${python} lacks the Python package "${missing}"` : `${python} could not import torch and onnx: ${last || err.message}` });
    });
  });
}

export interface Platform {
  os: NodeJS.Platform;
  /** `ID` and `ID_LIKE` of /etc/os-release on Linux. */
  distro: string[];
}

export function currentPlatform(osRelease = '/etc/os-release'): Platform {
  let distro: string[] = [];
  if (process.platform === 'linux') {
    try {
      const text = readFileSync(osRelease, 'utf8');
      const field = (name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(text)?.[1]?.replace(/^["']|["']$/g, '') ?? '';
      distro = `${field('ID')} ${field('ID_LIKE')}`.split(/\s+/).filter(Boolean);
    } catch {
      // no os-release: the generic instructions
    }
  }
  return { os: process.platform, distro };
}

/** What to install, for this platform, so that the export can run; one block of text. */
export function pythonInstructions(problem: string, platform: Platform, retry: string): string {
  const debian = platform.distro.some((d) => d === 'debian' || d === 'ubuntu');
  const lines = [`The model export needs Python 3 with PyTorch (1.13 or newer), onnx, numpy and Pillow: ${problem}.`, ''];
  if (debian) {
    lines.push(
      'On Debian or Ubuntu, install the distribution packages (they run with /usr/bin/python3):',
      `  sudo apt-get install ${DEBIAN_PACKAGES}`,
      `then: ${retry} --python /usr/bin/python3`,
    );
  } else {
    const py = platform.os === 'win32' ? 'py -3' : 'python3';
    lines.push(
      'Install the packages with pip, preferably in a virtual environment:',
      `  ${py} -m venv .venv-export`,
      `  ${platform.os === 'win32' ? '.venv-export\\Scripts\\pip' : '.venv-export/bin/pip'} install torch onnx numpy pillow regex`,
      `then: ${retry} --python ${platform.os === 'win32' ? '.venv-export\\Scripts\\python.exe' : '.venv-export/bin/python'}`,
    );
  }
  lines.push(
    '',
    'Or run the whole installation in a container that has them (Docker; nothing to install here):',
    '  docker compose run --rm export',
    '(the `export` service of docker-compose.yml; the pack lands in ./packs/ram-plus).',
  );
  return lines.join('\n');
}
