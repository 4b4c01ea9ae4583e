/**
 * Containers that exist apart from one call: listed, opened by id or name
 * from any process, signalled, stopped, waited for and removed. Everything
 * goes through the container's state directory (ts/runtime/state.ts) and
 * its monitor's control socket; no process needs the container's pid.
 */
import { join } from 'node:path';

import { collectOne, isPaused, setPaused } from '../cgroups/index.js';
import { processStart } from '../proc.js';
import type { ResolvedOptions } from '../config/schema.js';
import { TsboxError } from '../errors.js';
import { loadNative, type NativeChannel } from '../native.js';
import { readLog } from './logfiles.js';
import { execInto, type Container, type ExecOptions } from './container.js';
import { recv, signalNumber, SIGNAL_NAMES, toMonitor } from './protocol.js';
import { findContainer, listStates, liveState, readState, removeContainerDir, withRefused, type ContainerState } from './state.js';

/** How a container ended, as its state records it. */
export interface Ended {
  exitCode: number;
  signal: NodeJS.Signals | null;
  /** Why it could not start, when it could not. */
  error: string | null;
}

/** A handle to an existing container, from any process (`open()`). */
export class ContainerRef {
  readonly id: string;
  readonly dir: string;
  constructor(dir: string, id: string) {
    this.dir = dir;
    this.id = id;
  }

  /** Its state now: the OCI state and tsbox's fields. */
  state(): ContainerState {
    const s = readState(this.dir);
    if (!s) throw new TsboxError({ step: 'state', errno: 2, path: this.id.slice(0, 12), detail: 'the container is gone', hint: null });
    return withRefused(this.dir, liveState(s));
  }

  get name(): string | null {
    return this.state().name;
  }

  #control(): string {
    return join(this.dir, 'control.sock');
  }

  #connect(what: string) {
    const s = this.state();
    if (s.status === 'stopped') throw new TsboxError({ step: 'state', errno: 3, path: this.id.slice(0, 12), detail: `cannot ${what}: the container has stopped`, hint: null });
    try {
      return loadNative().binding.Channel.connect(this.#control());
    } catch (err) {
      throw new TsboxError({ step: 'state', errno: 3, path: this.id.slice(0, 12), detail: `cannot ${what}: its monitor does not answer (${(err as Error).message})`, hint: '`tsbox gc` cleans up after a monitor that died' }, { cause: err });
    }
  }

  /**
   * Runs the process of a container made by `create()` (in this process or
   * another), as it was asked for then. Resolves once it has started; throws
   * the report of the step that failed, or when it was started already.
   */
  async start(): Promise<void> {
    const ch = this.#connect('start it');
    try {
      await toMonitor.start(ch);
      const msg = await recv(ch);
      if (msg === null) throw new TsboxError({ step: 'start', errno: 0, path: this.id.slice(0, 12), detail: 'its monitor ended without starting it', hint: '`tsbox gc` cleans up after a monitor that died' });
      if (msg.type === 'failed') throw new TsboxError(msg);
      if (msg.type === 'exited') throw new TsboxError({ step: 'start', errno: 0, path: this.id.slice(0, 12), detail: 'the container ended before its process started', hint: null });
    } finally {
      ch.close();
    }
  }

  /** Sends `signal` to the container's PID 1 (default SIGTERM). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    const signo = signalNumber(signal);
    const ch = this.#connect('signal it');
    try {
      toMonitor.signal(ch, signo);
    } finally {
      ch.close();
    }
    // As runc's kill: SIGKILL to a paused container thaws it, or (on the v1
    // freezer) it would stay frozen with the signal pending.
    if (signo === signalNumber('SIGKILL')) this.#thaw();
  }

  /** Resolves when the container has ended, with how. */
  async wait(): Promise<Ended> {
    if (this.state().status !== 'stopped') {
      let ch: NativeChannel | undefined;
      try {
        ch = this.#connect('wait for it');
      } catch (err) {
        // It ended between the two looks: the state has how.
        if (this.state().status !== 'stopped') throw err;
      }
      // Exited or failed; either way the monitor wrote how before it answers
      // (or before it went, when it closed this connection first).
      if (ch) await waitOn(ch);
      for (let i = 0; i < 100 && this.state().status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
    }
    const s = this.state();
    return { exitCode: s.exitCode ?? 0, signal: s.exitSignal ? (SIGNAL_NAMES.get(s.exitSignal) ?? null) : null, error: s.error ?? null };
  }

  /** Runs a command in the running container, as Container.exec does. */
  exec(command: readonly string[], options: ExecOptions = {}): Promise<Container> {
    const s = this.state();
    if (s.status !== 'running') throw new TsboxError({ step: 'join', errno: 3, path: this.id.slice(0, 12), detail: `the container is ${s.status}`, hint: 'exec needs a running container' });
    return execInto(this.id, this.#control(), s.options as unknown as ResolvedOptions, command, options);
  }

  /** A detached container's output so far: the file a full log became (logMaxSize), then the log. */
  logs(): string {
    const log = this.state().log;
    if (!log) return '';
    return readLog(log);
  }

  /**
   * Its stop signal (SIGTERM unless `stopSignal` or its image said another),
   * and SIGKILL after `timeout` seconds (default 10) if it has not ended.
   */
  async stop(timeout = 10): Promise<Ended> {
    const s = this.state();
    if (s.status === 'stopped') return this.wait();
    this.kill(typeof s.options.stopSignal === 'string' ? (s.options.stopSignal as NodeJS.Signals) : 'SIGTERM');
    this.#thaw();
    const ended = this.wait();
    const t = setTimeout(() => {
      try {
        this.kill('SIGKILL');
      } catch {
        // It ended meanwhile: its monitor has gone.
      }
    }, timeout * 1000);
    try {
      return await ended;
    } finally {
      clearTimeout(t);
    }
  }

  /**
   * A paused container thawed, after a signal meant to end it has been sent
   * (stop, rm -f, a SIGKILL), as Docker's stop and kill do: frozen, its processes would
   * take the signal only once thawed (on the v1 freezer, SIGKILL too), and
   * the wait for their end would never end. Thawed after the signal, so
   * none of them runs before it is there.
   */
  #thaw(): void {
    if (isPaused(this.id)) setPaused(this.id, false);
  }

  /** Removes the stopped container's state; with `force`, kills a running one first. */
  async remove(options: { force?: boolean } = {}): Promise<void> {
    const s = this.state();
    if (s.status !== 'stopped') {
      if (!options.force) throw new TsboxError({ step: 'state', errno: 16, path: s.name ?? this.id.slice(0, 12), detail: `the container is ${s.status}`, hint: 'stop it first, or remove it with force (tsbox rm -f)' });
      this.kill('SIGKILL');
      await this.wait();
    }
    // Its monitor is on its way out once the container has ended: what it
    // held (the cgroup's marker names it as the owner) is free once it is gone.
    const monitor = s.monitorPid;
    for (let i = 0; i < 100 && monitor > 0 && processStart(monitor) !== null; i++) await new Promise((r) => setTimeout(r, 20));
    // A detached container's allowlist keeper ends with it, writing into its
    // state directory as it goes: gone (its rules with it) before that is.
    if (s.detached && s.network?.allow?.length) {
      try {
        const keeper = await import('../network/keeper.js');
        // (An ordinary user's is beside its pasta's record, in its state root.)
        if (s.network.driver === 'pasta') keeper.gcKeepers((await import('../network/pasta.js')).pastaDir(), keeper.nsKeeperOps);
        else keeper.gcKeepers();
      } catch {
        // Best effort: `tsbox gc` tries again.
      }
    }
    removeContainerDir(this.dir);
    // What the monitor left: the cgroup marker (its cgroups are gone with it).
    try {
      collectOne(this.id);
    } catch {
      // Best effort: `tsbox gc` tries again.
    }
    // A bridged container's address and rules (its monitor is gone now).
    if (s.network?.mode === 'bridge') {
      try {
        if (s.network.driver === 'pasta') (await import('../network/pasta.js')).gcPasta();
        else (await import('../network/bridge.js')).gcNetworks();
      } catch {
        // Best effort: `tsbox gc` tries again.
      }
    }
  }
}

/** A handle to the container named `ref` (name, id, or unique id prefix). */
export function open(ref: string): ContainerRef {
  const { dir, state } = findContainer(ref);
  return new ContainerRef(dir, state.id);
}

/** The containers of this user; stopped ones too with `all`. */
export function list(options: { all?: boolean } = {}): ContainerState[] {
  return listStates()
    .map((c) => c.state)
    .filter((s) => options.all || s.status !== 'stopped');
}

/** Asks the monitor on `ch` to answer at the container's end, and waits for it. */
async function waitOn(ch: NativeChannel): Promise<void> {
  try {
    await toMonitor.wait(ch);
    await recv(ch);
  } catch {
    // The monitor closed the connection first (ECONNRESET, EPIPE): it is on
    // its way out, the container ended; the state says how.
  } finally {
    ch.close();
  }
}
