/**
 * A running container, or a process exec'd into one: its stdio, `wait()`,
 * `kill()`, `exec()`, the 'exit' event, and with an egress allowlist the
 * 'refused' event (ts/network/refused.ts). Phase 10, `exited`, lands here.
 * The launcher is passed in, not imported: this module only speaks the
 * protocol.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { PassThrough, Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ReadStream } from 'node:tty';
import { closeSync, openSync } from 'node:fs';

import { parseRunInput, type ResolvedOptions, type RunOptions } from '../config/schema.js';
import { egressRefusedCapability, hostNetworkAsRoot } from '../config/capabilities.js';
import { hold, pipeStream, recvStarted } from './streams.js';
import { AbortError, TsboxError } from '../errors.js';
import { loadNative, type NativeChannel } from '../native.js';
import type { AppliedLimits, Cgroup, CgroupStats, CgroupUsage } from '../cgroups/index.js';
import { buildProcessPlan, type ProcessPlan } from './plan.js';
import type { NetworkInfo } from '../network/bridge.js';
import type { Refusals } from '../network/refused.js';
import { CANCELLED, helperDied, recvHeld, recvWeak, signalNumber, SIGNAL_NAMES, toHelper, toMonitor, traceLine, type HelperMsg } from './protocol.js';

/** How a container ended. */
export interface ExitResult {
  /** The command's exit status; 128+N when signal N ended it (the shell's convention). */
  exitCode: number;
  /** The signal that ended the command, if one did. */
  signal: NodeJS.Signals | null;
  /** The `timeout` expired and tsbox killed the container. */
  timedOut: boolean;
  /** The kernel's OOM killer killed a process of the container (its memory limit). */
  oomKilled: boolean;
  /** Its network: mode, interfaces and addresses, published ports; null for `none` (loopback only). */
  network: NetworkInfo | null;
  /** The resource limits that were applied (cgroup), defaults included; null without a cgroup. */
  limits: ({ mode: string } & Record<string, unknown>) | null;
  /** CPU time and peak RSS of the container's processes, from the kernel's rusage. */
  usage: {
    /** From the start of the launch to the container's end. */
    wallMs: number;
    /** CPU time of all the container's processes (rusage of its PID 1 and what it reaped). */
    userMicros: number;
    systemMicros: number;
    /** Largest resident set of any one process of the container, in KiB. */
    maxRssKiB: number;
    /** The container's peak memory (memory.peak on v2, max_usage_in_bytes on v1); null without a cgroup. */
    peakMemoryBytes: number | null;
    /** The most processes at once, where the kernel reports it (pids.peak). */
    peakPids: number | null;
    /** CPU periods in which the quota throttled the container. */
    cpuThrottledPeriods: number | null;
  };
}

export { signalNumber };

export interface ContainerInit {
  id: string;
  /** The options it was started with: the defaults of `exec`. */
  options: ResolvedOptions;
  pid: number;
  /** The monitor's control socket (exec, signals, wait). */
  control: string;
  /** Our end of the command's stdin pipe, when piped. */
  stdin: Writable | null;
  /** The launch channel, or (an exec'd process) the control connection. */
  channel: NativeChannel;
  /** Resolves when the helper has exited (an exec'd process: at once). */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The exit report, when it came with (instead of) the start. */
  first: Extract<HelperMsg, { type: 'exited' }> | null;
  trace: ((line: string) => void) | undefined;
  /** One-line notices for the user (e.g. a single-id map). */
  notices: string[];
  /** Gives back what the container held (its id range), once it has ended; resolves when it has. */
  release: () => void | Promise<void>;
  /** Milliseconds until the container is killed, if limited. */
  timeout?: number | undefined;
  /** Kills the container when aborted; wait() then rejects with an AbortError. */
  signal?: AbortSignal | undefined;
  /** With tty: the terminal's master, as stdin and stdout, and its descriptor. */
  terminal?: ReadStream | undefined;
  terminalFd?: number | undefined;
  /** The command's output, held from the moment the helper started. */
  stdout: Readable | null;
  stderr: Readable | null;
  /** The container's own cgroup; null for an exec'd process (it is its container's). */
  cgroup: Cgroup | null;
  /** process.hrtime.bigint() when the launch began. */
  startedAt: bigint;
  /** Its network (launch's phase 5); null for `none`. */
  network?: NetworkInfo | null;
  /** With an egress allowlist: what it refuses, reported until the allowlist is closed (release). */
  refusals?: Refusals | undefined;
  /** An exec'd process: signals go to it over its control connection. */
  exec?: boolean;
  /** A created container, whose process its monitor holds until start(). */
  startable?: boolean;
  /** Our ends of its stdio (pipes, the terminal's master): unref() releases their hold on the event loop too. */
  handles?: ({ ref(): unknown; unref(): unknown } | null | undefined)[];
  /** An exec'd process, once it has ended: its output pipes are closed after a grace (endAfterGrace). */
  endOutput?: () => void;
}

/** What `exec` may change; the rest comes from the container. */
export type ExecOptions = Pick<RunOptions, 'user' | 'groupAdd' | 'capAdd' | 'capDrop' | 'noNewPrivileges' | 'seccomp' | 'ulimits' | 'env' | 'cwd' | 'stdio' | 'trace' | 'timeout' | 'tty' | 'ttySize'> & {
  signal?: AbortSignal | undefined;
  /**
   * Leave the process running when this program is gone (`tsbox exec -d`):
   * the container's monitor keeps it. Otherwise it is killed when the
   * caller goes.
   */
  detach?: boolean | undefined;
};

/** setTimeout's limit: a longer delay fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fn` once `ms` milliseconds have passed, for any `ms` (chained timers
 * beyond setTimeout's 2^31-1): its cancel, and its hold on the event loop,
 * which can be released and taken again (Container.unref()).
 */
function timer(ms: number, fn: () => void): { cancel: () => void; hold: (on: boolean) => void } {
  let t: NodeJS.Timeout;
  let held = true;
  const due = Date.now() + ms;
  const arm = (left: number) => {
    t = setTimeout(() => {
      const rest = due - Date.now();
      if (rest > 0) arm(rest);
      else fn();
    }, Math.min(left, MAX_TIMER_MS));
    if (!held) t.unref();
  };
  arm(ms);
  return {
    cancel: () => clearTimeout(t),
    hold: (on) => {
      held = on;
      if (on) t.ref();
      else t.unref();
    },
  };
}

/**
 * A timer that does nothing but hold Node's event loop open: the native
 * waits on a container (its channel, its helper) do not, so that unref()
 * can let go.
 */
export function keepAlive(): NodeJS.Timeout {
  return setInterval(() => {}, MAX_TIMER_MS);
}

export { AbortError };

export class Container extends EventEmitter {
  /** 64 hex digits; the default hostname is its first 12. */
  readonly id: string;
  /** Host pid of the container's PID 1. */
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** One-line notices about how the container was set up (e.g. a single-id map when rootless). */
  readonly notices: readonly string[];
  /** Its network: mode, interfaces and addresses, published ports; null for `none` (loopback only). */
  readonly network: NetworkInfo | null;
  /** Its exit status once it has ended (128+N after signal N), as ChildProcess's; null before. */
  exitCode: number | null = null;
  /** The signal that ended it, once ended by one; null otherwise, as ChildProcess's. */
  signalCode: NodeJS.Signals | null = null;
  readonly #channel: NativeChannel;
  readonly #options: ResolvedOptions;
  readonly #terminal: ReadStream | undefined;
  readonly #terminalFd: number;
  readonly #cgroup: Cgroup | null;
  readonly #control: string;
  readonly #exec: boolean;
  /** Made by create() and not started yet. */
  #startable: boolean;
  #started: Promise<void>;
  #onStarted: () => void = () => {};
  readonly #watch: () => Promise<ExitResult>;
  #watching: Promise<ExitResult> | null = null;
  /** How it ends; a detached container is watched only once someone asks. */
  get #result(): Promise<ExitResult> {
    this.#watching ??= this.#watch();
    return this.#watching;
  }
  #exited = false;
  #timedOut = false;
  #aborted: unknown = undefined;
  /** Holds the event loop open while the container is watched, unless unref()'d. */
  #keep: NodeJS.Timeout | null = null;
  #held = true;
  readonly #holds: ((on: boolean) => void)[] = [];

  constructor(init: ContainerInit) {
    super();
    this.id = init.id;
    this.pid = init.pid;
    this.network = init.network ?? null;
    this.stdin = init.terminal ?? init.stdin;
    this.stdout = init.terminal ?? init.stdout;
    this.stderr = init.terminal ? null : init.stderr;
    this.#terminal = init.terminal;
    this.#terminalFd = init.terminalFd ?? -1;
    this.#cgroup = init.cgroup;
    this.notices = init.notices;
    this.#channel = init.channel;
    this.#options = init.options;
    this.#control = init.control;
    this.#exec = init.exec ?? false;
    this.#startable = init.startable ?? false;
    this.#started = this.#startable ? new Promise((resolve) => (this.#onStarted = resolve)) : Promise.resolve();
    const deadline =
      init.timeout === undefined
        ? null
        : timer(init.timeout, () => {
            this.#timedOut = true;
            this.kill('SIGKILL');
          });
    const cancelTimeout = () => deadline?.cancel();
    if (deadline) this.#holds.push(deadline.hold);
    for (const h of init.handles ?? []) if (h) this.#holds.push((on) => (on ? h.ref() : h.unref()));
    const onAbort = () => {
      this.#aborted = init.signal?.reason ?? true;
      this.kill('SIGKILL');
    };
    if (init.signal?.aborted) onAbort();
    else init.signal?.addEventListener('abort', onAbort, { once: true });
    this.#watch = () => {
      // The native waits below do not hold the event loop; this does, until unref().
      this.#keep = keepAlive();
      if (!this.#held) this.#keep.unref();
      const result = this.#monitor(init).finally(() => {
        cancelTimeout();
        clearInterval(this.#keep!);
        init.signal?.removeEventListener('abort', onAbort);
      });
      // wait() is how errors surface; keep an unobserved result from being
      // an unhandled rejection. 'error' tells listeners too (only them: an
      // 'error' nobody listens to would throw, which wait() already covers).
      result.catch((err: unknown) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      });
      return result;
    };
    // A detached container outlives this process: nothing here waits for
    // its end (which would keep Node running) until wait() or a timeout asks.
    if (!init.options.detach || init.timeout !== undefined) void this.#result;
    // As ChildProcess's 'spawn', after the call that made it has returned:
    // here, once spawn() has resolved and its caller can listen. Then
    // 'refused': each connection (or name) its egress allowlist refused,
    // rate-limited, those refused meanwhile first (the result's
    // network.refused sums them all up).
    setImmediate(() => {
      this.emit('spawn');
      init.refusals?.listen((r) => this.emit('refused', r));
    });
  }

  async #monitor(init: ContainerInit): Promise<ExitResult> {
    let msg: HelperMsg | null = init.first;
    let failure: unknown;
    try {
      while (msg === null || msg.type !== 'exited') {
        // While held, the promise of recv holds the event loop; unref()
        // cancels it and the watch goes on weakly.
        const next = this.#held ? await recvHeld(this.#channel) : await recvWeak(this.#channel);
        if (next === CANCELLED) continue;
        msg = next;
        if (msg === null) break;
        if (msg.type === 'failed') throw new TsboxError(msg);
        if (msg.type === 'started') this.#onStarted();
      }
    } catch (err) {
      failure = err;
    } finally {
      this.#exited = true;
      this.#channel.close();
      // Nothing reads the command's stdin any more: our end of the pipe goes
      // now, whether or not the caller ever touched it.
      init.stdin?.destroy();
      init.endOutput?.();
    }
    // Usage is read before the cgroup goes; then the cgroup, the id range
    // and the state go back.
    // What the result reports of the cgroup alone (usage(): four files, not stats()'s ten).
    const usage: { stats: CgroupUsage | null; limits: AppliedLimits | null } = { stats: null, limits: null };
    const collect = () => {
      if (init.cgroup) {
        try {
          // Read by the monitor as the command ended, while PID 1 exited.
          const read = msg?.type === 'exited' ? msg.usage : undefined;
          usage.stats = read !== undefined && read.length === init.cgroup.usageFiles.length ? init.cgroup.usageFrom(read) : init.cgroup.usage();
          usage.limits = init.cgroup.applied();
        } catch {
          // Usage is reported as unknown rather than failing a finished run.
        }
      }
      // Its own promise (a pool waits for it); errors are the release's to swallow.
      void init.release();
    };
    // `exited` comes once PID 1 is reaped, and its pid namespace took every
    // other process of the container with it: what it held goes back now,
    // while the helper exits. Otherwise, once the helper is gone.
    const ended = failure === undefined && msg?.type === 'exited';
    if (ended) collect();
    // An attached container's result comes once `exited` has, without
    // waiting for tsbox-init's own exit after it (its mount namespace's
    // teardown takes milliseconds; a pool waits for it in close()). A
    // detached one's caller is not its monitor's parent: that is a wait.
    const how = ended && !init.options.detach ? { code: 0, signal: null } : await init.closed;
    const wallMs = Number(process.hrtime.bigint() - init.startedAt) / 1e6;
    // All the terminal's output is read once the master reports the slave gone.
    if (init.terminal && !init.terminal.destroyed) await new Promise((r) => init.terminal!.once('close', r));
    // Output someone is reading is delivered before wait() resolves (as
    // child_process's 'close'); output nobody reads does not hold it back.
    // A container that ended at once may have got here before spawn()'s
    // caller went on: one turn of the event loop lets it attach its readers.
    // Not when every stream has its reader already (run(), a pool's run()):
    // nobody is left to wait for, and the turn would let whatever else is
    // queued (a pool's refill) go before this result.
    const streams = [this.stdout, this.stderr].filter((st): st is Readable => st !== null && st !== init.terminal);
    if (streams.some((st) => st.readableFlowing !== true && !st.readableEnded)) await new Promise((r) => setImmediate(r));
    const reading = streams.filter((st) => st.readableFlowing === true && !st.readableEnded);
    await Promise.all(reading.map((st) => finished(st).catch(() => {})));
    if (!ended) collect();
    const { stats, limits } = usage;
    if (failure !== undefined) throw failure;
    if (msg === null) {
      if (!init.exec) throw helperDied(how, "without reporting the container's exit; the container was killed with it");
      throw new TsboxError({ step: 'monitor', errno: 0, path: null, detail: "the container's monitor ended without reporting how the process ended", hint: 'something killed the monitor; the process was killed with it' });
    }
    if (msg.type !== 'exited') throw new TsboxError({ step: 'monitor', errno: 0, path: null, detail: `unexpected ${msg.type} from tsbox-init`, hint: null });
    const signal = msg.signal ? (SIGNAL_NAMES.get(msg.signal) ?? null) : null;
    if (this.#aborted !== undefined) throw new AbortError(this.#aborted);
    const oomKilled = (stats?.oomKills ?? 0) > 0;
    const result: ExitResult = {
      exitCode: msg.code ?? 128 + (msg.signal ?? 0),
      signal,
      timedOut: this.#timedOut,
      oomKilled,
      usage: {
        wallMs: Math.round(wallMs * 1000) / 1000,
        userMicros: msg.rusage.userUsec,
        systemMicros: msg.rusage.systemUsec,
        maxRssKiB: msg.rusage.maxRssKib,
        peakMemoryBytes: stats?.peakMemoryBytes ?? null,
        peakPids: stats?.peakPids ?? null,
        cpuThrottledPeriods: stats?.cpuThrottledPeriods ?? null,
      },
      limits: limits ? { mode: limits.mode, ...limits.limits } : null,
      // What the allowlist refused, up to its close in release() above.
      network: init.network && init.refusals ? { ...init.network, refused: init.refusals.summary() } : (init.network ?? null),
    };
    init.trace?.(`exited: ${signal ? `signal ${signal}` : `status ${result.exitCode}`}${oomKilled ? ' (OOM-killed)' : ''}`);
    this.exitCode = result.exitCode;
    this.signalCode = result.signal;
    if (oomKilled) this.emit('oom', result);
    this.emit('exit', result);
    return result;
  }

  /**
   * Starts a container made by `create()`: its process is handed to the
   * sandbox, which has been waiting for it. Resolves once it was exec'd;
   * rejects as wait() does when it could not start.
   */
  async start(): Promise<void> {
    if (!this.#startable) throw new TsboxError({ step: 'start', errno: 16, path: this.id.slice(0, 12), detail: 'the container was started already', hint: 'create() makes a container to start once' });
    this.#startable = false;
    // The monitor holds the process since create: what runs is what was asked for then.
    await toHelper.start(this.#channel);
    await Promise.race([this.#started, this.#result.then(() => {})]);
  }

  /**
   * Lets this program end while the container runs, as ChildProcess's
   * unref(): nothing of the container (its wait, its timeout, its stdio
   * pipes) keeps Node's event loop open any more. When Node ends, an
   * attached container is killed, as always; a detached one runs on. While
   * Node runs for other reasons, 'exit' and wait() still come.
   */
  unref(): this {
    this.#hold(false);
    return this;
  }

  /** Undoes unref(): the container keeps Node's event loop open again until it ends. */
  ref(): this {
    this.#hold(true);
    return this;
  }

  #hold(on: boolean): void {
    const was = this.#held;
    this.#held = on;
    if (was && !on && !this.#exited) this.#channel.cancelRecv();
    if (this.#keep) {
      if (on) this.#keep.ref();
      else this.#keep.unref();
    }
    for (const h of this.#holds) h(on);
  }

  /** Live usage of the container's cgroup (memory, cpu, pids); null without one. */
  stats(): CgroupStats | null {
    if (this.#exited || !this.#cgroup) return null;
    return this.#cgroup.stats();
  }

  /**
   * Resolves when the container has ended and the output of every stream being
   * read has been delivered. A stream nobody reads keeps its output for a
   * later reader and does not hold this back.
   */
  wait(): Promise<ExitResult> {
    return this.#result;
  }

  /** Sends a signal to the container's PID 1 (tsbox's init passes it on to the command), or to an exec'd process. */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (this.#exited) return false;
    const signo = signalNumber(signal);
    try {
      if (this.#exec) toMonitor.signal(this.#channel, signo);
      else toHelper.signal(this.#channel, signo);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Runs another command in this running container, as `docker exec` does: it
   * joins the container's namespaces and cgroup (so `ps` there shows both),
   * through the container's monitor (its control socket: no pid is named), and
   * runs with the container's user, environment, capabilities, no_new_privs,
   * seccomp filter and rlimits unless `options` says otherwise. It is not
   * dumpable until it execs, so nothing in the container can read its memory
   * while it still holds the monitor's privileges. Returns the same kind of
   * handle.
   */
  async exec(command: readonly string[], options: ExecOptions = {}): Promise<Container> {
    if (this.#exec) {
      throw new TsboxError({ step: 'join', errno: 22, path: String(this.pid), detail: "exec runs in a container, not in a process exec'd into one", hint: 'call exec() on the container' });
    }
    if (this.#exited) {
      throw new TsboxError({ step: 'join', errno: 3, path: String(this.pid), detail: 'the container has ended', hint: 'exec needs a running container' });
    }
    return execInto(this.id, this.#control, this.#options, command, options);
  }

  /**
   * With `tty`: the descriptor of the terminal's master (its `stdin` and
   * `stdout` read and write it), to hand on, as an OCI runtime's
   * `--console-socket` does; null without a terminal.
   */
  get terminalFd(): number | null {
    return this.#terminalFd >= 0 ? this.#terminalFd : null;
  }

  /** With `tty`: sets the terminal's size (the command gets SIGWINCH). */
  resize(cols: number, rows: number): void {
    if (!this.#terminal || this.#exited) return;
    loadNative().binding.setWindowSize(this.#terminalFd, cols, rows);
  }

  /** Kills the container (SIGKILL) if it still runs and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill('SIGKILL');
    await this.#result.catch(() => {});
  }
}

/**
 * Runs `command` in the running container whose monitor serves `control`,
 * with the container's options `base` as defaults (Container.exec, and
 * `tsbox exec` from any process).
 */
export async function execInto(id: string, control: string, base: ResolvedOptions, command: readonly string[], options: ExecOptions = {}): Promise<Container> {
  const { signal, detach, ...rest } = options;
  const merged: RunOptions = {
    rootfs: base.rootfs,
    userns: base.userns,
    user: rest.user ?? base.user,
    groupAdd: rest.groupAdd ?? base.groupAdd,
    capAdd: rest.capAdd ?? base.capAdd,
    capDrop: rest.capDrop ?? base.capDrop,
    noNewPrivileges: rest.noNewPrivileges ?? base.noNewPrivileges,
    // The container's filter and rlimits, as everything else of its
    // process, unless this call says otherwise.
    seccomp: rest.seccomp ?? base.seccomp,
    ulimits: rest.ulimits ?? Object.fromEntries(Object.entries(base.ulimits).map(([name, l]) => [name, { soft: l.soft ?? 'unlimited', hard: l.hard ?? 'unlimited' }])),
    env: { ...base.env, ...rest.env },
    cwd: rest.cwd ?? base.cwd,
    stdio: rest.stdio ?? 'pipe',
    trace: rest.trace ?? base.trace,
    timeout: rest.timeout,
    tty: rest.tty ?? false,
    ...(rest.ttySize ? { ttySize: rest.ttySize } : {}),
    init: false,
  };
  // A process joining an allowlisted container is held as its first one is:
  // no raw sockets, and none to add (ts/config/capabilities.ts).
  const refusedCap = base.allow.length > 0 || hostNetworkAsRoot(base) ? egressRefusedCapability(merged.capAdd ?? []) : null;
  if (refusedCap !== null) {
    throw new TsboxError({ step: 'config', errno: 22, path: 'capAdd', detail: `"${refusedCap}" cannot be added to a process of a container with an egress allowlist, or on network "host" with userns "host"`, hint: "CAP_NET_RAW and CAP_NET_ADMIN would let it send around the allowlist's rules, or act on the host's own network" });
  }
  const { command: argv, options: parsed } = parseRunInput(command, merged);
  const o = { ...parsed, allow: base.allow, network: base.network };
  if (signal?.aborted) throw new AbortError(signal.reason);
  const plan = buildProcessPlan(argv, o, base.hostname ?? id.slice(0, 12), loadNative().binding);
  return execPlan(id, control, o, plan, { signal, detach });
}

/**
 * Runs `plan` in the running container whose monitor serves `control`; `o`
 * gives its stdio, terminal, trace and timeout. Resolves once it has
 * started (an OCI runtime's exec builds its own plan: ts/oci).
 */
export async function execPlan(
  id: string,
  control: string,
  o: ResolvedOptions,
  plan: ProcessPlan,
  how: { signal?: AbortSignal | undefined; detach?: boolean | undefined } = {},
): Promise<Container> {
  const { signal } = how;
  const t0 = process.hrtime.bigint();
  const native = loadNative();
  let ch: NativeChannel;
  try {
    ch = native.binding.Channel.connect(control);
  } catch (err) {
    throw new TsboxError({ step: 'join', errno: 3, path: control, detail: `reach the container's monitor: ${(err as Error).message}`, hint: 'the container must still be running' }, { cause: err });
  }
  const stdio = execStdio(o, native.binding);
  let msg: HelperMsg | null;
  let terminal: ReadStream | undefined;
  let terminalFd: number | undefined;
  try {
    await toMonitor.exec(ch, plan, stdio.theirs, how.detach === true);
    stdio.sent();
    ({ msg, terminal, terminalFd } = await recvStarted(ch));
  } catch (err) {
    stdio.abandon();
    ch.close();
    throw err instanceof TsboxError ? err : new TsboxError({ step: 'join', errno: 0, path: control, detail: (err as Error).message, hint: null }, { cause: err });
  }
  if (msg === null || msg.type === 'failed') {
    stdio.abandon();
    terminal?.destroy();
    ch.close();
    if (msg === null) throw new TsboxError({ step: 'join', errno: 0, path: control, detail: "the container's monitor closed the connection", hint: 'the container must still be running' });
    throw new TsboxError(msg);
  }
  return new Container({
    id,
    options: o,
    pid: msg.type === 'started' ? msg.pid : 0,
    control,
    stdin: stdio.stdin,
    channel: ch,
    closed: Promise.resolve({ code: null, signal: null }),
    first: msg.type === 'exited' ? msg : null,
    trace: o.trace ? (line) => traceLine(t0, line) : undefined,
    notices: [],
    release: () => {},
    timeout: o.timeout,
    signal,
    terminal,
    terminalFd,
    stdout: stdio.stdout,
    stderr: stdio.stderr,
    handles: [...stdio.handles, terminal],
    endOutput: stdio.endOutput,
    cgroup: null,
    startedAt: t0,
    exec: true,
  });
}

/**
 * How long the output pipes of an exec'd process that has ended stay open
 * for what is left in them. A process it left in the background
 * (`sh -c 'daemon &'`) keeps their other ends; its output is not the
 * exec's, and waiting for it would hold wait() (and `tsbox exec`) for as
 * long as it runs, even if it writes all the while. Docker gives an exec's
 * streams 2 s too.
 */
const EXEC_OUTPUT_GRACE_MS = 2000;

/** How often the grace is counted down. */
const EXEC_OUTPUT_TICK_MS = 50;

/**
 * Ends `held` once `source` (our end of an output pipe) has ended, or
 * after EXEC_OUTPUT_GRACE_MS of being free to read, whatever still comes:
 * time while a reader holds it back (backpressure) does not count, so what
 * was written before the end is delivered to a slow reader. Then `source`
 * is closed, and a process still writing to the pipe gets EPIPE.
 */
function endAfterGrace(source: Socket, held: PassThrough): void {
  if (source.readableEnded || source.destroyed) return;
  let left = EXEC_OUTPUT_GRACE_MS;
  // The pipe itself holds the event loop as long as it needs to: this does not.
  const tick = setInterval(() => {
    if (!source.isPaused()) left -= EXEC_OUTPUT_TICK_MS;
    if (left <= 0) cut();
  }, EXEC_OUTPUT_TICK_MS).unref();
  const cut = () => {
    clearInterval(tick);
    source.unpipe(held);
    source.destroy();
    held.end();
  };
  source.once('close', () => clearInterval(tick));
}

/** The stdio of an exec'd process: the descriptors to send, and our streams. */
function execStdio(o: ResolvedOptions, binding: ReturnType<typeof loadNative>['binding']) {
  const modes = o.tty ? null : typeof o.stdio === 'string' ? [o.stdio, o.stdio, o.stdio] : o.stdio;
  const theirs: number[] = [];
  const toClose: number[] = [];
  const ours: (number | null)[] = [null, null, null];
  if (modes) {
    modes.forEach((mode, i) => {
      if (mode === 'inherit') theirs.push(i);
      else if (mode === 'ignore') {
        const fd = openSync('/dev/null', i === 0 ? 'r' : 'w');
        theirs.push(fd);
        toClose.push(fd);
      } else {
        const [r, w] = binding.pipe() as [number, number];
        const [child, parent] = i === 0 ? [r, w] : [w, r];
        theirs.push(child);
        toClose.push(child);
        ours[i] = parent;
      }
    });
  }
  const stream = (i: number) => (ours[i] === null ? null : pipeStream(ours[i]!, i !== 0));
  const stdin = stream(0);
  const stdout = stream(1);
  const stderr = stream(2);
  // hold()'s stream is a PassThrough: endAfterGrace ends its writable side.
  const heldOut = hold(stdout) as PassThrough | null;
  const heldErr = hold(stderr) as PassThrough | null;
  return {
    theirs,
    stdin,
    stdout: heldOut,
    stderr: heldErr,
    handles: [stdin, stdout, stderr],
    endOutput: () => {
      if (stdout) endAfterGrace(stdout, heldOut!);
      if (stderr) endAfterGrace(stderr, heldErr!);
    },
    /** Our copies of the descriptors the monitor now has. */
    sent: () => {
      for (const fd of toClose.splice(0)) closeSync(fd);
    },
    abandon: () => {
      for (const fd of toClose.splice(0)) closeSync(fd);
      stdin?.destroy();
      stdout?.destroy();
      stderr?.destroy();
    },
  };
}
