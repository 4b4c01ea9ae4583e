/**
 * The phases and messages of the launch channel and of a monitor's control
 * socket, Node's side (tsbox_core::message is the other): typed senders, one
 * receiver, the signal tables, and the error for a helper that died without
 * a report.
 */
import { writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

import { TsboxError } from '../errors.js';
import type { NativeChannel } from '../native.js';
import type { ControlRequest, HelperMsg, NodeMsg, ProcessPlan, SandboxPlan } from '../generated/wire.js';

export { PHASES, type Phase } from '../generated/tables.js';

// The messages' types are generated from tsbox_core's (crates/tsbox-core/src/message.rs).
export type { HelperMsg, Rusage } from '../generated/wire.js';

export async function recv(ch: NativeChannel): Promise<HelperMsg | null> {
  const raw = await ch.recv();
  return raw === null ? null : (JSON.parse(raw) as HelperMsg);
}

/** What recvHeld resolves to when `cancelRecv()` ended its wait. */
export const CANCELLED = Symbol('cancelled');

/**
 * As recv, but a `cancelRecv()` on the channel ends the wait with
 * CANCELLED (the message stays for the next call): a Container's watch,
 * which unref() moves to recvWeak.
 */
export async function recvHeld(ch: NativeChannel): Promise<HelperMsg | null | typeof CANCELLED> {
  try {
    return await recv(ch);
  } catch (err) {
    if ((err as Error).message === 'cancelled') return CANCELLED;
    throw err;
  }
}

/**
 * As recv, without holding the event loop open while it waits: the caller
 * keeps Node up for it (a Container's keep-alive, which unref() releases).
 * A callback through a weak threadsafe function per message costs a few
 * tenths of a millisecond more than recv's promise: used only once unref()'d.
 */
export function recvWeak(ch: NativeChannel): Promise<HelperMsg | null> {
  return new Promise((resolve, reject) => {
    ch.recvWeak((err, raw) => {
      if (err) reject(err);
      else resolve(raw === null ? null : (JSON.parse(raw) as HelperMsg));
    });
  });
}

/**
 * A message that could not go to tsbox-init because its end of the channel
 * is closed and it left no report: it is gone (killed) or going. Its exit
 * says how: the caller gives helperDied().
 */
export class HelperGone extends Error {
  constructor(cause: unknown) {
    super(`tsbox-init's end of the channel is closed (${cause instanceof Error ? cause.message : String(cause)})`, { cause });
  }
}

/**
 * Sends a message. When the other end is gone (EPIPE), the report it left
 * before exiting says why, and that is what the caller gets: the helper's
 * `uid_map: EINVAL`, not `send: Broken pipe`; with no report, HelperGone.
 * A channel that cannot be read either (closed here) gives the send's error.
 */
async function send(ch: NativeChannel, msg: NodeMsg | ControlRequest, fds: number[] = []): Promise<void> {
  try {
    if (fds.length > 0) ch.sendFds(JSON.stringify(msg), fds);
    else ch.send(JSON.stringify(msg));
  } catch (err) {
    try {
      for (let m = await recv(ch); m !== null; m = await recv(ch)) {
        if (m.type === 'failed') throw new TsboxError(m);
      }
    } catch (read) {
      throw read instanceof TsboxError ? read : err;
    }
    throw new HelperGone(err);
  }
}

/** Node → helper (tsbox_core::NodeMsg), one sender per message. */
export const toHelper = {
  /** Phase 1, with the descriptors the helper keeps while the container lives. */
  plan: (ch: NativeChannel, plan: SandboxPlan, held: number[]) => send(ch, { type: 'plan', ...plan }, held),
  /** Phase 3: Node wrote the id maps (newuidmap). */
  maps: (ch: NativeChannel) => send(ch, { type: 'maps' }),
  /** Phase 4: Node made the cgroup. */
  cgroup: (ch: NativeChannel) => send(ch, { type: 'cgroup' }),
  /** Phase 5: Node's network hook made the container's interfaces (`NetworkPhase::Node`). */
  network: (ch: NativeChannel) => send(ch, { type: 'network' }),
  /** The OCI prestart and createRuntime hooks ran: the child may pivot_root. */
  runtimeHooks: (ch: NativeChannel) => send(ch, { type: 'runtimeHooks' }),
  /** Phase 8: the process to run in the sandbox. */
  process: (ch: NativeChannel, process: ProcessPlan) => send(ch, { type: 'process', ...process }),
  /** A created container's process, which the monitor keeps until `start`. */
  hold: (ch: NativeChannel, process: ProcessPlan) => send(ch, { type: 'hold', ...process }),
  /** Run the held process. */
  start: (ch: NativeChannel) => send(ch, { type: 'start' }),
  signal: (ch: NativeChannel, signo: number) => ch.send(JSON.stringify({ type: 'signal', signo } satisfies NodeMsg)),
  /** `tsbox-init --exec`'s one message: the process, with its stdio, the namespaces' and the cgroup's descriptors. */
  execInto: (ch: NativeChannel, msg: Omit<Extract<NodeMsg, { type: 'execInto' }>, 'type'>, fds: number[]) => send(ch, { type: 'execInto', ...msg }, fds),
};

/** Client → monitor on its control socket (tsbox_core::ControlRequest). */
export const toMonitor = {
  /** Run a process in the container with `stdio` (none with a tty) attached. */
  exec: (ch: NativeChannel, process: ProcessPlan, stdio: number[], detach = false) => send(ch, { type: 'exec', process, detach }, stdio),
  /** The container's namespaces and v2 cgroup, as descriptors, for a process started by `tsbox-init --exec`. */
  namespaces: (ch: NativeChannel) => send(ch, { type: 'namespaces' }),
  signal: (ch: NativeChannel, signo: number) => ch.send(JSON.stringify({ type: 'signal', signo } satisfies ControlRequest)),
  wait: (ch: NativeChannel) => send(ch, { type: 'wait' }),
  /** Run the process the container was created with; replies `started` or `failed`. */
  start: (ch: NativeChannel) => send(ch, { type: 'start' }),
  /** No reply: the container is killed when `ch` closes (its process gone, however). */
  guard: (ch: NativeChannel) => ch.send(JSON.stringify({ type: 'guard' } satisfies ControlRequest)),
};

export const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

export function signalNumber(sig: NodeJS.Signals | number): number {
  if (typeof sig === 'number') return sig;
  const n = (osConstants.signals as Record<string, number>)[sig];
  if (n === undefined) {
    throw new TsboxError({ step: 'signal', errno: 22, path: String(sig), detail: 'unknown signal name', hint: 'use a name such as SIGTERM, SIGINT or SIGKILL' });
  }
  return n;
}

/**
 * tsbox-init could not be started (spawnHelper's argument check, or the
 * spawn itself, which `started()` reports): `spawn_helper` on its path.
 */
export function spawnFailure(initPath: string, err: unknown): TsboxError {
  return new TsboxError(
    { step: 'spawn_helper', errno: 0, path: initPath, detail: (err as Error).message, hint: 'reinstall tsbox, or point TSBOX_NATIVE_DIR at a build holding tsbox-init' },
    { cause: err },
  );
}

/** A failure the helper could not report (it died, or never started). */
export function helperDied(how: { code: number | null; signal: NodeJS.Signals | null }, stage: string): TsboxError {
  return new TsboxError({
    step: 'monitor',
    errno: 0,
    path: null,
    detail: `tsbox-init ended ${how.signal ? `by ${how.signal}` : `with status ${how.code}`} ${stage}`,
    hint: 'this is a bug in tsbox or a signal from outside; run with --trace to see the last step',
  });
}

/**
 * Where bin/tsbox.js leaves `process.hrtime.bigint()` at its first line, so that
 * a CLI launch's trace says how long tsbox took before it (the CLI's
 * modules, the options, an image's look-up).
 */
export const CLI_ENTRY = Symbol.for('tsbox.cliEntry');

/** The `start` trace line of a launch in the CLI (none elsewhere): how long after the CLI's entry it began. */
export function traceStart(trace: ((what: string) => void) | undefined): void {
  const entry = (globalThis as Record<symbol, unknown>)[CLI_ENTRY];
  if (trace && typeof entry === 'bigint') trace(`start: the launch begins ${(Number(process.hrtime.bigint() - entry) / 1e6).toFixed(3)} ms after tsbox's entry`);
}

/** A --trace line of Node's side, with its time offset from `t0` (the helper's share the clock). */
export function traceLine(t0: bigint, what: string): void {
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const line = Buffer.from(`tsbox[${process.pid}] +${ms.toFixed(3)}ms ${what}\n`);
  // The library's lines go through process.stderr (an application may have
  // its writes in hand). The CLI's go straight to fd 2: Node makes
  // process.stderr (and loads node:stream for it) on its first use, ~5 ms
  // that a traced launch would show as its own. What a stderr will not take
  // now (a full non-blocking pipe) goes through the stream.
  // Once a line went through the stream, every later one does: a line
  // written to fd 2 would land in the middle of what the stream still holds.
  if (traceByStream || typeof (globalThis as Record<symbol, unknown>)[CLI_ENTRY] !== 'bigint') {
    process.stderr.write(line);
    return;
  }
  let written = 0;
  try {
    written = writeSync(2, line);
  } catch {
    // All of it below.
  }
  if (written < line.length) {
    traceByStream = true;
    process.stderr.write(line.subarray(written));
  }
}

let traceByStream = false;
