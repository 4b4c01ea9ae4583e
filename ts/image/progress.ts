/**
 * How `tsbox pull` (and `tsbox run` when it pulls) shows a pull: on a
 * terminal, a line per layer redrawn in place with a bar, bytes and speed;
 * elsewhere, a plain line per layer step (a log stays readable).
 */
import type { PullProgress } from './pull.js';

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

const WORDS: Record<PullProgress['phase'], string> = {
  resolved: 'manifest',
  exists: 'already in the store',
  download: 'downloading',
  unpack: 'unpacking',
  done: 'done',
  retry: 'retrying',
};

/** A progress reporter writing to `out`; `finish()` leaves the last state on screen. */
export function progressPrinter(out: NodeJS.WriteStream): { onProgress: (p: PullProgress) => void; finish: () => void } {
  if (!out.isTTY) {
    return {
      onProgress(p) {
        // Plain lines: one per step, none per chunk.
        if (p.phase === 'download' && p.bytes !== 0 && p.bytes !== p.total) return;
        if (p.phase === 'download' && p.bytes === p.total) return;
        const size = p.phase === 'resolved' ? `${formatBytes(p.total)} in layers` : formatBytes(p.total);
        out.write(`${short(p.digest)}: ${WORDS[p.phase]} (${size})${p.message ? `: ${p.message}` : ''}\n`);
      },
      finish() {},
    };
  }
  const layers = new Map<string, { p: PullProgress; start: number }>();
  let drawn = 0;
  let last = 0;
  const draw = (force: boolean) => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const width = Math.max(10, Math.min(30, (out.columns ?? 80) - 60));
    const lines = [...layers.entries()].map(([digest, { p, start }]) => {
      const frac = p.total > 0 ? Math.min(1, p.bytes / p.total) : 1;
      const bar = p.phase === 'download' ? `[${'='.repeat(Math.round(frac * width)).padEnd(width, ' ')}] ` : '';
      const secs = Math.max(0.001, (now - start) / 1000);
      const speed = p.phase === 'download' ? ` ${formatBytes(p.bytes / secs)}/s` : '';
      return `${short(digest)}: ${WORDS[p.phase].padEnd(11)} ${bar}${formatBytes(p.bytes)}/${formatBytes(p.total)}${speed}`;
    });
    let s = drawn > 0 ? `\x1b[${drawn}A` : '';
    for (const l of lines) s += `\x1b[2K${l}\n`;
    out.write(s);
    drawn = lines.length;
  };
  return {
    onProgress(p) {
      if (p.phase === 'resolved') {
        out.write(`${short(p.digest)}: manifest, ${formatBytes(p.total)} in layers\n`);
        return;
      }
      const prev = layers.get(p.digest);
      layers.set(p.digest, { p, start: prev?.start ?? Date.now() });
      draw(p.phase !== 'download');
    },
    finish() {
      draw(true);
    },
  };
}

/**
 * Runs `work` with the progress of what it pulls, loads or imports shown on
 * stderr (none when `quiet`), the last state left on screen however it
 * ends: what `tsbox pull`, `run`, `load` and `import` share.
 */
export async function withProgress<T>(quiet: boolean, work: (onProgress: ((p: PullProgress) => void) | undefined) => Promise<T>): Promise<T> {
  // Made at the first report: an image already in the store reports
  // nothing, and its run must not pay for process.stderr (Node makes that
  // stream, and loads node:stream for it, on first use: ~5 ms).
  const shown: { printer?: ReturnType<typeof progressPrinter> } = {};
  try {
    return await work(quiet ? undefined : (p) => (shown.printer ??= progressPrinter(process.stderr)).onProgress(p));
  } finally {
    shown.printer?.finish();
  }
}
