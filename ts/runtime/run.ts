/**
 * `run()`: a container as a function call — start it, feed it input, collect
 * its output (bounded), wait, and return everything in one result.
 */
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';

import type { ResolvedOptions } from '../config/schema.js';
import { TsboxError } from '../errors.js';
import type { Container, ExitResult } from './container.js';
import { launch, type LaunchExtras } from './launch.js';

export interface CaptureOptions {
  /** Written to the command's stdin, which is then closed. Default: stdin is closed at once. */
  input?: string | Buffer | Readable | undefined;
  /** `utf8` (default) gives strings; `buffer` gives Buffers. */
  encoding?: 'utf8' | 'buffer' | undefined;
  /** Bytes kept of each of stdout and stderr; beyond it the container is killed. Default 64 MiB. */
  maxBuffer?: number | undefined;
  /** Kills the container when aborted; `run` then rejects with an AbortError. */
  signal?: AbortSignal | undefined;
}

export interface RunResult<T extends string | Buffer = string | Buffer> extends ExitResult {
  stdout: T;
  stderr: T;
  /** Output went past `maxBuffer`, and the container was killed. */
  truncated: boolean;
  /** The container's id (its first 12 hex digits are its default hostname). */
  id: string;
}

const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;

export async function runCaptured(command: string[], o: ResolvedOptions, c: CaptureOptions, explicitLimits = false, layers?: readonly string[], imageLock?: LaunchExtras['imageLock']): Promise<RunResult> {
  return capture(o, c, () => launch(command, o, { signal: c.signal, explicitLimits, layers, imageLock }));
}

/**
 * run()'s part after the start: feeds the input of the container `start`
 * gives, collects its output, and waits (a pool's run starts differently).
 */
export async function capture(o: Pick<ResolvedOptions, 'stdio'>, c: CaptureOptions, start: () => Promise<Container>): Promise<RunResult> {
  if (o.stdio !== 'pipe') {
    throw new TsboxError({ step: 'config', errno: 0, path: 'stdio', detail: "run() captures the output, so stdio must be 'pipe'", hint: "use spawn() to pass stdio through" });
  }
  const container = await start();
  const max = c.maxBuffer ?? DEFAULT_MAX_BUFFER;
  let truncated = false;
  const collect = (stream: Readable | null) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream?.on('data', (d: Buffer) => {
      if (size + d.length > max) {
        chunks.push(d.subarray(0, max - size));
        size = max;
        if (!truncated) {
          truncated = true;
          container.kill('SIGKILL');
        }
        return;
      }
      size += d.length;
      chunks.push(d);
    });
    return () => Buffer.concat(chunks, size);
  };
  const out = collect(container.stdout);
  const err = collect(container.stderr);
  const stdin = container.stdin;
  if (stdin) {
    // A container that exits without reading its input closes the pipe: not an error.
    stdin.on('error', () => {});
    if (c.input instanceof Readable) c.input.pipe(stdin);
    else stdin.end(c.input ?? '');
  }
  // The result is complete when the container has ended and both streams
  // have delivered their last byte (which may come after the exit report).
  const drained = [container.stdout, container.stderr].filter((st) => st !== null).map((st) => finished(st).catch(() => {}));
  const result = await container.wait();
  await Promise.all(drained);
  const enc = (b: Buffer) => (c.encoding === 'buffer' ? b : b.toString('utf8'));
  return { ...result, stdout: enc(out()), stderr: enc(err()), truncated, id: container.id };
}
