/**
 * The warm pool: sandboxes built ahead of time (phases 1 to 7, `ready`),
 * each waiting for a process it has not been given. `pool.run()` hands one
 * its process (phase 8) and takes it out of the pool for good: a sandbox
 * runs one process and is destroyed with it, never reused, so nothing of
 * one caller's run reaches the next. The pool builds the next one in the
 * background, one at a time, so that refilling never takes more than one
 * core from the caller.
 *
 * A pooled container is a cold one built earlier: the same launch, the same
 * plans, its own cgroup, id range, overlay, seccomp filter, capabilities
 * and no_new_privs, and with an egress allowlist (`allow`, the pool's, fixed
 * at creation) its own resolver, iptables chain and NFLOG reader, set up
 * while it is built and removed with it (its release, or #discard). What differs per call is only what the ProcessPlan
 * carries (argv, env, cwd, user, capabilities, seccomp, rlimits), and
 * limits tighter than the pool's, written to the sandbox's cgroup before
 * its process starts. A call's options are checked, and its ProcessPlan
 * built, once per set of options (a call without any is the common case):
 * later calls with the same ones reuse it, frozen, with their own command
 * and their sandbox's HOSTNAME (Base.processes).
 *
 * PID 1 is what the pool's options say, as in a cold container. With
 * `init: false` the waiting PID 1 execs the handed-over process itself.
 * With `init` (the default) it stays tsbox's init and forks the process:
 * exec'ing it in PID 1's place would save that fork and two wake-ups
 * (~1.5 ms of a call, measured), but the process would then be its pid
 * namespace's init, which the kernel shields from the signals it has no
 * handler for (kill('SIGTERM') would do nothing) and which must reap
 * every orphan, neither of which the caller asked of it.
 */
import { limitsOf, parseCommand, parseRunInput, type ResolvedOptions, type RunOptions } from '../config/schema.js';
import { AbortError, TsboxError } from '../errors.js';
import { updateCgroup, type AppliedLimits, type Cgroup } from '../cgroups/index.js';
import { loadNative } from '../native.js';
import type { SeccompCompiler } from '../config/seccomp.js';
import { keepAlive, type Container } from '../runtime/container.js';
import { handOver, launchReady, type ReadySandbox } from '../runtime/launch.js';
import { planFor, processTemplate, type ProcessTemplate } from '../runtime/plan.js';
import { capture, type CaptureOptions, type RunResult } from '../runtime/run.js';
import { checkCallLimit, configError, TIGHTER_LIMITS } from './ceiling.js';

/** The options of a pool: a container's (they shape every sandbox), plus its size. */
export type PoolOptions = Omit<RunOptions, 'detach' | 'name'> & {
  /** Sandboxes kept ready. Default 4. */
  size?: number | undefined;
  /**
   * The most sandboxes at once, ready and running together; a call beyond it
   * waits until one ends. Default 64 (and never less than `size`).
   */
  max?: number | undefined;
};

/** What each call may set: the process's own options, and limits no looser than the pool's. */
export type PoolProcessOptions = Pick<RunOptions, (typeof PROCESS_KEYS)[number] | (typeof TIGHTER_LIMITS)[number]> & {
  /** Kills the container when aborted; the call then rejects with an AbortError. */
  signal?: AbortSignal | undefined;
};

/** Options of `pool.run()`: the process's, and what run() takes for its input and output. */
export type PoolRunOptions = PoolProcessOptions & Omit<CaptureOptions, 'signal'>;

/** The pool's counts, and how long its sandboxes take to build. */
export interface PoolStats {
  /** Built and waiting for a process. */
  ready: number;
  /** Running a caller's process. */
  busy: number;
  /** Being built (refill, or for a caller who found none ready). */
  starting: number;
  /** Callers waiting because `max` sandboxes exist. */
  waiting: number;
  /** Sandboxes built since the pool was created. */
  created: number;
  /** Processes handed to a sandbox. */
  handedOver: number;
  /** Sandboxes that could not be built, or died before they got a process (OOM, a killed monitor). */
  failed: number;
  /** The last of those failures, as its error's message. */
  lastFailure: string | null;
  /** Milliseconds to build a sandbox: the last one, and the mean. */
  refillMs: { last: number | null; mean: number | null };
}

/** What a call may set for its process (the rest shapes the sandbox, fixed at pool creation). */
const PROCESS_KEYS = ['env', 'cwd', 'user', 'groupAdd', 'capAdd', 'capDrop', 'noNewPrivileges', 'seccomp', 'ulimits', 'timeout', 'trace'] as const;
const DEFAULT_SIZE = 4;
const DEFAULT_MAX = 64;
/** Tries to hand a process over when sandboxes die under it before it starts. */
const HAND_OVER_TRIES = 3;
/** How long a running container may delay its sandbox's replacement (see spawn). */
const REFILL_DELAY_MS = 5;
/** Sets of call options whose process a pool keeps built (Base.processes). */
const KEPT_PROCESSES = 16;

/**
 * What every sandbox of the pool is built from: the options as a container's,
 * and for an image, its layers and what a call's command is made of.
 */
interface Base {
  input: RunOptions;
  options: ResolvedOptions;
  layers?: string[] | undefined;
  /** An image's: the command of a call (its entrypoint first; none given: its Cmd). */
  command?: ((given: readonly string[]) => string[]) | undefined;
  /**
   * What a call's options make, checked and built once per set of options
   * (a call without any is the common one): the oldest goes beyond
   * KEPT_PROCESSES. Keyed by the options as JSON (see callOptions).
   */
  processes?: Map<string, CallProcess>;
  /** The process of a call without options, without its command: each sandbox prepares it while it waits. */
  expected?: ProcessTemplate;
}

/** A call's options checked against the pool's, and its process's plan without its command and hostname. */
interface CallProcess {
  o: ResolvedOptions;
  tighter: Record<string, number> | null;
  /** Frozen: each call's plan shares its fields (planFor), so none may change them. */
  template: ProcessTemplate;
}

interface Slot extends ReadySandbox {
  /** Its helper has exited: the sandbox is gone. */
  dead: boolean;
}

/** A pool of sandboxes built ahead, each used once. Make one with {@link createPool}. */
export class Pool {
  readonly size: number;
  readonly max: number;
  /**
   * The sandboxes' options. An image's are known once it is found (or
   * pulled, as `pull` says) for the first build or call: until then the
   * options as given, or the search in flight. A failed search is tried
   * again by the next build or call, which hears its error (as run() would).
   */
  #base: Base | RunOptions | Promise<Base>;
  readonly #explicitLimits: boolean;
  readonly #ready: Slot[] = [];
  readonly #waiters: { resolve: (s: Slot) => void; reject: (e: Error) => void }[] = [];
  /** Sandboxes being built, and how many of them are the background refill's. */
  #starting = 0;
  #refilling = 0;
  #busy = 0;
  /** The containers handed out and not yet ended (close() kills them). */
  readonly #running = new Set<Container>();
  #closed = false;
  #fillQueued = false;
  /** Everything in flight that close() waits for: builds, and teardown of used and dead sandboxes. */
  readonly #pending = new Set<Promise<unknown>>();
  #created = 0;
  #handedOver = 0;
  #failed = 0;
  #lastFailure: string | null = null;
  #refillLast: number | null = null;
  #refillTotal = 0;
  /** Consecutive refill failures: the next one waits longer (a broken rootfs must not spin). */
  #backoff = 0;
  #retry: NodeJS.Timeout | null = null;

  constructor(options: PoolOptions = {}) {
    const { size = DEFAULT_SIZE, max, ...rest } = options;
    for (const key of ['detach', 'name'] as const) {
      if ((rest as Record<string, unknown>)[key] !== undefined) {
        throw configError(key, key === 'detach' ? "a pool's sandboxes end with the pool; they cannot be detached" : 'every sandbox of a pool would have the same name', 'use create() or spawn() for a detached or named container');
      }
    }
    if ((rest.publish?.length ?? 0) > 0) {
      throw configError('publish', 'every sandbox of a pool would publish the same host ports, which only one container can hold', 'publish from a container of its own (run() or spawn()), or reach the pool\'s containers by their addresses');
    }
    if (!Number.isInteger(size) || size < 0 || size > 1024) throw configError('size', `${String(size)} is not a whole number from 0 to 1024`, null);
    const top = max ?? Math.max(DEFAULT_MAX, size);
    if (!Number.isInteger(top) || top < 1 || top < size) throw configError('max', `${String(max)} must be a whole number, at least 1 and at least size (${size})`, null);
    // The options are checked once, here, as a container's: a bad one fails createPool, not every call.
    const checked = parseRunInput(['/'], rest).options;
    this.#base = rest.image === undefined ? { input: rest, options: checked } : rest;
    this.#explicitLimits = Object.keys(limitsOf(rest)).length > 0;
    this.size = size;
    this.max = top;
    this.#fill();
  }

  /**
   * Runs `command` in a sandbox of the pool to completion, as run() does:
   * the same result (exit status, output, usage, limits), the same errors.
   */
  async run(command: readonly string[], options?: PoolRunOptions & { encoding?: 'utf8' }): Promise<RunResult<string>>;
  async run(command: readonly string[], options: PoolRunOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
  async run(command: readonly string[], options: PoolRunOptions = {}): Promise<RunResult> {
    const { input, encoding, maxBuffer, ...rest } = options;
    // run() captures: stdio is the pool's, fixed, and must be pipes.
    const { stdio } = (await this.#resolve()).options;
    return capture({ stdio }, { input, encoding, maxBuffer, signal: rest.signal }, () => this.spawn(command, rest));
  }

  /** Starts `command` in a sandbox of the pool, as spawn() does; resolves once it was exec'd. */
  async spawn(command: readonly string[], options: PoolProcessOptions = {}): Promise<Container> {
    if (this.#closed) throw closedError();
    // close() waits for calls in flight: one that has taken its sandbox is
    // in no list close() empties.
    const call = this.#spawn(command, options);
    this.#track(call.catch(() => {}));
    return call;
  }

  async #spawn(command: readonly string[], options: PoolProcessOptions): Promise<Container> {
    const { signal, ...given } = options;
    const native = loadNative();
    const { argv, o, tighter, template } = this.#processOptions(command, given, await this.#resolve(), native.binding);
    if (signal?.aborted) throw new AbortError(signal.reason);
    for (let tries = 1; ; tries++) {
      const slot = await this.#take(signal);
      if (this.#closed) {
        this.#discard(slot);
        throw closedError();
      }
      this.#busy++;
      // What the container held goes back after its result, not before.
      // Its result does not wait for tsbox-init's exit, nor for what it
      // held to be given back: close() does.
      this.#track(slot.init.closed);
      const release = slot.init.release;
      slot.init.release = () => {
        const given = Promise.resolve(release());
        this.#track(given);
        return given;
      };
      let container: Container;
      try {
        if (tighter) tighten(slot, tighter);
        const plan = planFor(template, argv, slot.sandbox.hostname);
        container = await handOver(slot, plan, { timeout: o.timeout, signal });
        this.#handedOver++;
      } catch (err) {
        this.#busy--;
        this.#discard(slot);
        // A sandbox that died before the process started (the OOM killer, a
        // killed monitor) is the pool's failure, counted on every try, and
        // not the caller's: the next one, up to HAND_OVER_TRIES in all.
        // (One that close() took is neither.)
        const died = sandboxDied(err) && !this.#closed;
        if (died) this.#fail(err);
        this.#fillSoon();
        if (died && tries < HAND_OVER_TRIES) continue;
        throw err;
      }
      this.#running.add(container);
      // Its state names its command (tsbox ps) from its start: the monitor
      // writes it with `running`, off this thread.
      // The refill starts once this container has ended and its result is
      // out, or REFILL_DELAY_MS after it started if it runs longer: a short
      // command's result never waits behind the next sandbox's build.
      const soon = setTimeout(() => this.#fillSoon(), REFILL_DELAY_MS);
      const done = () => {
        clearTimeout(soon);
        this.#running.delete(container);
        this.#busy--;
        this.#fillSoon();
      };
      this.#track(container.wait().then(done, done));
      // close() came while it was handed over: it goes with the rest.
      if (this.#closed) {
        container.kill('SIGKILL');
        throw closedError();
      }
      return container;
    }
  }

  /** The pool's counts (see {@link PoolStats}). */
  stats(): PoolStats {
    return {
      ready: this.#ready.length,
      busy: this.#busy,
      starting: this.#starting,
      waiting: this.#waiters.length,
      created: this.#created,
      handedOver: this.#handedOver,
      failed: this.#failed,
      lastFailure: this.#lastFailure,
      refillMs: { last: this.#refillLast, mean: this.#created > 0 ? Math.round((this.#refillTotal / this.#created) * 1000) / 1000 : null },
    };
  }

  /**
   * Destroys every ready sandbox, kills the containers still running, and
   * resolves once all of them are gone with what they held (cgroups, state,
   * id ranges). Calls waiting for a sandbox reject; later calls too.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    for (const w of this.#waiters.splice(0)) w.reject(closedError());
    for (const slot of this.#ready.splice(0)) this.#discard(slot);
    // Sandboxes still being built are discarded as they arrive (#built);
    // running containers are killed and waited for.
    for (const c of this.#running) c.kill('SIGKILL');
    // The helpers' exits are awaited weakly (an idle pool does not keep Node
    // running): close() holds the event loop until they are all in.
    const keep = keepAlive();
    try {
      while (this.#pending.size > 0) await Promise.all([...this.#pending]);
    } finally {
      clearInterval(keep);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** The sandboxes' options (see #base). */
  #resolve(): Base | Promise<Base> {
    const b = this.#base;
    if (b instanceof Promise || 'options' in b) return b;
    const found = import('../image/run.js').then(async ({ imageBase, imageCommand }) => {
      const image = await imageBase(b);
      const base: Base = { input: image.options, options: parseRunInput(['/'], image.options).options, layers: image.layers, command: (given) => imageCommand(image, given) };
      this.#base = base;
      return base;
    });
    this.#base = found;
    found.catch(() => {
      if (this.#base === found) this.#base = b;
    });
    return found;
  }

  /**
   * The call's options checked against the pool's: its argv, its resolved
   * options, its tighter limits and its process's template. Options seen
   * before are not checked and built again: only the command is.
   */
  #processOptions(command: readonly string[], given: Record<string, unknown>, base: Base, seccomp: SeccompCompiler): CallProcess & { argv: string[] } {
    const allowed = new Set<string>([...PROCESS_KEYS, ...TIGHTER_LIMITS]);
    for (const key of Object.keys(given)) {
      if (given[key] === undefined || allowed.has(key)) continue;
      throw configError(key, 'is fixed when the pool is created: it shapes the sandbox, which is built before the call', `create a pool with ${key}, or use run()/spawn(); a call may set ${[...PROCESS_KEYS, ...TIGHTER_LIMITS].join(', ')}`);
    }
    // An image's entrypoint goes before the call's command; no command is its Cmd.
    const full = base.command ? base.command(command) : command;
    // The options are read once, into plain data: the key describes exactly
    // what is parsed, whatever getters or toJSON the caller's objects have.
    const call = callOptions(given);
    const kept = call === null ? undefined : base.processes?.get(call.key);
    if (kept) return { ...kept, argv: parseCommand(full) };
    const opts = call?.options ?? given;
    const merged: RunOptions = { ...base.input, ...opts, env: { ...base.input.env, ...(opts.env as Record<string, string> | undefined) } };
    const { command: argv, options: o } = parseRunInput(full, merged);
    const tighter: Record<string, number> = {};
    for (const key of TIGHTER_LIMITS) {
      const v = o[key];
      if (opts[key] === undefined || v === undefined) continue;
      if (checkCallLimit(key, v, base.options)) tighter[key] = v;
    }
    // A sandbox under tsbox's init holds its command's process already (it
    // was forked ahead) or forks it: two processes, whatever the call asks.
    if (tighter.pidsLimit !== undefined && tighter.pidsLimit >= 0 && tighter.pidsLimit < 2 && base.options.init) {
      throw configError('pidsLimit', `${tighter.pidsLimit} leaves no room for the command beside the sandbox's init, which is a process of its own`, 'give 2 or more, or create the pool with init: false');
    }
    // A profile file is read again by each call, as run() reads it: it may change.
    const fromFile = typeof o.seccomp === 'string' && o.seccomp !== 'default' && o.seccomp !== 'unconfined';
    // A call without options has the process each sandbox prepares ahead
    // (#expected): one template for both.
    const template = call?.key === '{}' && !fromFile ? this.#expected(base, seccomp) : deepFreeze(processTemplate(o, seccomp));
    const built: CallProcess = { o, tighter: Object.keys(tighter).length > 0 ? tighter : null, template };
    if (call !== null && !fromFile) {
      base.processes ??= new Map();
      if (base.processes.size >= KEPT_PROCESSES) base.processes.delete(base.processes.keys().next().value!);
      base.processes.set(call.key, built);
    }
    return { ...built, argv };
  }

  /** A ready sandbox: one that waits, or one built now (or when one ends, at `max`). */
  #take(signal: AbortSignal | undefined): Promise<Slot> {
    while (this.#ready.length > 0) {
      const slot = this.#ready.shift()!;
      if (!slot.dead) return Promise.resolve(slot);
    }
    return new Promise<Slot>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new AbortError(signal?.reason));
      };
      const waiter = {
        resolve: (s: Slot) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(s);
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#fill();
    });
  }

  /**
   * Starts building what is missing: one sandbox per waiting caller (up to
   * `max`), and the background refill towards `size`, one at a time.
   */
  #fill(): void {
    if (this.#closed) return;
    const total = () => this.#ready.length + this.#starting + this.#busy;
    // Callers waiting: as many builds as there are of them, beyond the refill's.
    while (this.#starting - this.#refilling < this.#waiters.length && total() < this.max) this.#build(false);
    if (this.#refilling === 0 && this.#retry === null && this.#ready.length + this.#starting < this.size && total() < this.max) {
      this.#build(true);
    }
  }

  /** #fill(), after whatever the caller does next with its result. */
  #fillSoon(): void {
    if (this.#fillQueued) return;
    this.#fillQueued = true;
    setImmediate(() => {
      this.#fillQueued = false;
      this.#fill();
    });
  }

  /**
   * The process of a call without options, its command aside: each sandbox
   * forks and prepares it while it waits, and such a call's plan is made
   * from it. Built once per pool.
   */
  #expected(base: Base, seccomp: SeccompCompiler): ProcessTemplate {
    base.expected ??= deepFreeze(processTemplate(base.options, seccomp));
    return base.expected;
  }

  /**
   * One sandbox built to ready. An image's holds the store's launch lock
   * (Store.launching) until its state names its layers, as a cold launch
   * of an image does: a prune meanwhile waits rather than take them. The
   * refill's lets the event loop run between its steps (LaunchExtras.background):
   * a caller's hand-over is not held behind them.
   */
  async #launchReady(base: Base, refill: boolean): Promise<ReadySandbox> {
    const { options, layers } = base;
    const expected = this.#expected(base, loadNative().binding);
    if (layers === undefined) return launchReady(options, { explicitLimits: this.#explicitLimits, background: refill, expected });
    const { Store } = await import('../image/store.js');
    const imageLock = await new Store().launching();
    try {
      return await launchReady(options, { explicitLimits: this.#explicitLimits, layers, imageLock, background: refill, expected });
    } finally {
      imageLock.unlock();
    }
  }

  #build(refill: boolean): void {
    this.#starting++;
    if (refill) this.#refilling++;
    const t0 = process.hrtime.bigint();
    const built = Promise.resolve(this.#resolve()).then((base) => this.#launchReady(base, refill)).then(
      (ready) => {
        this.#starting--;
        if (refill) this.#refilling--;
        this.#backoff = 0;
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        this.#created++;
        this.#refillLast = Math.round(ms * 1000) / 1000;
        this.#refillTotal += ms;
        this.#built({ ...ready, dead: false });
      },
      (err: unknown) => {
        this.#starting--;
        if (refill) this.#refilling--;
        this.#fail(err);
        // A caller waiting for this build hears why it failed, as a cold
        // start would have told it; the refill backs off and tries again.
        const waiter = this.#waiters.shift();
        if (waiter) waiter.reject(err instanceof Error ? err : new Error(String(err)));
        if (refill && !this.#closed) {
          this.#backoff = Math.min(this.#backoff * 2 || 10, 5_000);
          this.#retry = setTimeout(() => {
            this.#retry = null;
            this.#fill();
          }, this.#backoff);
          this.#retry.unref();
        }
        this.#fill();
      },
    );
    this.#track(built);
  }

  /** A sandbox is ready: to a waiting caller, or into the pool, watched for its death. */
  #built(slot: Slot): void {
    if (this.#closed) return this.#discard(slot);
    void slot.init.closed.then(() => {
      slot.dead = true;
      const i = this.#ready.indexOf(slot);
      if (i < 0) return;
      // It died waiting (OOM, its monitor killed): out of the pool, and another built.
      this.#ready.splice(i, 1);
      this.#fail(new TsboxError({ step: 'pool', errno: 0, path: slot.init.id.slice(0, 12), detail: 'a ready sandbox died before it was used', hint: null }));
      this.#discard(slot);
      this.#fill();
    });
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(slot);
    else this.#ready.push(slot);
    this.#fill();
  }

  /** Tears a sandbox down that no Container owns: closing its channel ends its helper and its process. */
  #discard(slot: Slot): void {
    const { init } = slot;
    init.channel.close();
    init.stdin?.destroy();
    for (const h of init.handles ?? []) (h as { destroy?: () => void } | null | undefined)?.destroy?.();
    init.terminal?.destroy();
    this.#track(
      init.closed.then(
        () => init.release(),
        () => init.release(),
      ),
    );
  }

  #fail(err: unknown): void {
    this.#failed++;
    this.#lastFailure = err instanceof Error ? err.message : String(err);
  }

  #track(p: Promise<unknown>): void {
    const t = p.finally(() => this.#pending.delete(t));
    this.#pending.add(t);
  }
}

/** What {@link plainCopy} finds no plain JSON value for. */
const NOT_PLAIN = Symbol('not plain');

/**
 * A call's options as plain data, each value read once, and that data as
 * JSON: the key of Base.processes. The call is parsed from the copy, not
 * from `given`, so that two calls with one key were parsed from the same
 * values: JSON.stringify of `given` itself runs toJSON and getters that
 * may answer otherwise than zod's reads (a capAdd whose toJSON hid it made
 * the key of no options). Anything JSON would drop or change (a function,
 * a Map, a Buffer, a BigInt, NaN, -0, an undefined in an array, an array
 * with properties of its own) makes null: such a call is checked and
 * built on its own, so that it can never pass as another call's options.
 */
export function callOptions(given: Record<string, unknown>): { key: string; options: Record<string, unknown> } | null {
  const options = plainCopy(given);
  if (options === NOT_PLAIN) return null;
  return { key: JSON.stringify(options), options: options as Record<string, unknown> };
}

/** `v` as new plain JSON data (an undefined property left out), or NOT_PLAIN. */
function plainCopy(v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return v;
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0) ? v : NOT_PLAIN;
    case 'object':
      if (v === null) return v;
      break;
    default:
      return NOT_PLAIN;
  }
  if (Array.isArray(v)) {
    const n = v.length;
    // Holes, or properties beyond the elements (toJSON among them).
    if (Object.keys(v).length !== n) return NOT_PLAIN;
    const out: unknown[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const c = plainCopy(v[i]);
      if (c === NOT_PLAIN || c === undefined) return NOT_PLAIN;
      out[i] = c;
    }
    return out;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    // Assigned, it would set the copy's prototype instead.
    if (k === '__proto__') return NOT_PLAIN;
    const c = plainCopy((v as Record<string, unknown>)[k]);
    if (c === NOT_PLAIN) return NOT_PLAIN;
    if (c !== undefined) out[k] = c;
  }
  return out;
}

/** `value`, and everything it holds, frozen. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Makes a pool and starts building its sandboxes. See {@link Pool}. */
export function createPool(options: PoolOptions = {}): Pool {
  return new Pool(options);
}

/** Lowers the sandbox's cgroup limits to the call's before its process starts; the report shows them. */
function tighten(slot: Slot, limits: Record<string, number>): void {
  const cgroup = slot.init.cgroup;
  if (!cgroup) throw configError(Object.keys(limits)[0]!, "the pool's sandboxes have no cgroup, so there is no limit to tighten", 'run as root, or in a cgroup delegated to you');
  const writes = updateCgroup(slot.init.id, limits);
  const applied = cgroup.applied();
  const tightened: AppliedLimits = { ...applied, limits: { ...applied.limits, ...limits }, writes: [...applied.writes, ...writes] };
  // The same cgroup, reporting what it now holds.
  slot.init.cgroup = {
    mode: cgroup.mode,
    id: cgroup.id,
    v2Path: cgroup.v2Path,
    paths: cgroup.paths,
    place: (pid) => cgroup.place(pid),
    stats: () => cgroup.stats(),
    usage: () => cgroup.usage(),
    usageFiles: cgroup.usageFiles,
    usageFrom: (texts) => cgroup.usageFrom(texts),
    kill: () => cgroup.kill(),
    destroy: () => cgroup.destroy(),
    applied: () => tightened,
    setOwner: (pid) => cgroup.setOwner(pid),
  } satisfies Cgroup;
}

/** The sandbox died under the hand-over, before the process started: nothing the caller asked for failed. */
function sandboxDied(err: unknown): boolean {
  if (!(err instanceof TsboxError)) return false;
  // A start failure with no errno is the sandbox's death (signal, lost
  // monitor); the OOM killer during setup is ENOMEM (startFailure), which a
  // retry on the next sandbox would only meet again.
  return err.step === 'monitor' || (err.step === 'start' && err.errno === 0);
}

function closedError(): TsboxError {
  return new TsboxError({ step: 'pool', errno: 0, path: null, detail: 'the pool is closed', hint: 'create another pool' });
}
