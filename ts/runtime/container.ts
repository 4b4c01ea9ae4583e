/**
 * A running container: its stdio, `wait()`, `kill()`, and the 'exit' event.
 * Sync point 5 (DESIGN.md) lands here: the helper's `exited` report.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';

import { TsboxError } from '../errors.js';
import type { NativeChannel } from '../native.js';
import { recv, type HelperMsg } from './launch.js';

/** How a container ended. */
export interface ExitResult {
  /** The command's exit status; 128+N when signal N ended it (the shell's convention). */
  exitCode: number;
  /** The signal that ended the command, if one did. */
  signal: NodeJS.Signals | null;
  /** CPU time and peak RSS of the container's processes, from the kernel's rusage. */
  usage: {
    userMicros: number;
    systemMicros: number;
    /** Largest resident set of any one process of the container, in KiB. */
    maxRssKiB: number;
  };
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

export function signalNumber(sig: NodeJS.Signals | number): number {
  if (typeof sig === 'number') return sig;
  const n = (constants.signals as Record<string, number>)[sig];
  if (n === undefined) {
    throw new TsboxError({ step: 'signal', errno: 22, path: String(sig), detail: 'unknown signal name', hint: 'use a name such as SIGTERM, SIGINT or SIGKILL' });
  }
  return n;
}

interface ContainerInit {
  id: string;
  pid: number;
  child: ChildProcess;
  channel: NativeChannel;
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The exit report, when it came with (instead of) the start. */
  first: Extract<HelperMsg, { type: 'exited' }> | null;
  trace: ((line: string) => void) | undefined;
}

export class Container extends EventEmitter {
  /** 64 hex digits; the default hostname is its first 12. */
  readonly id: string;
  /** Host pid of the container's PID 1. */
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly #channel: NativeChannel;
  readonly #result: Promise<ExitResult>;
  #exited = false;

  constructor(init: ContainerInit) {
    super();
    this.id = init.id;
    this.pid = init.pid;
    this.stdin = init.child.stdin;
    this.stdout = init.child.stdout;
    this.stderr = init.child.stderr;
    this.#channel = init.channel;
    this.#result = this.#monitor(init);
    // wait() is how errors surface; keep an unobserved result from being an unhandled rejection.
    this.#result.catch(() => {});
  }

  async #monitor(init: ContainerInit): Promise<ExitResult> {
    let msg: HelperMsg | null = init.first;
    try {
      while (msg === null || msg.type !== 'exited') {
        msg = await recv(this.#channel);
        if (msg === null) break;
        if (msg.type === 'failed') throw new TsboxError(msg);
      }
    } finally {
      this.#exited = true;
      this.#channel.close();
    }
    const how = await init.closed;
    if (msg === null) {
      throw new TsboxError({
        step: 'monitor',
        errno: 0,
        path: null,
        detail: `tsbox-init ended ${how.signal ? `by ${how.signal}` : `with status ${how.code}`} without reporting the container's exit`,
        hint: 'something killed the helper; the container was killed with it',
      });
    }
    const signal = msg.signal ? (SIGNAL_NAMES.get(msg.signal) ?? null) : null;
    const result: ExitResult = {
      exitCode: msg.code ?? 128 + (msg.signal ?? 0),
      signal,
      usage: { userMicros: msg.rusage.userUsec, systemMicros: msg.rusage.systemUsec, maxRssKiB: msg.rusage.maxRssKib },
    };
    init.trace?.(`exited: ${signal ? `signal ${signal}` : `status ${result.exitCode}`}`);
    this.emit('exit', result);
    return result;
  }

  /** Resolves when the container has ended and its output is drained. */
  wait(): Promise<ExitResult> {
    return this.#result;
  }

  /** Sends a signal to the container's PID 1 (tsbox's init passes it on to the command). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (this.#exited) return false;
    const signo = signalNumber(signal);
    try {
      this.#channel.send(JSON.stringify({ type: 'signal', signo }));
      return true;
    } catch {
      return false;
    }
  }

  /** Kills the container (SIGKILL) if it still runs and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill('SIGKILL');
    await this.#result.catch(() => {});
  }
}
