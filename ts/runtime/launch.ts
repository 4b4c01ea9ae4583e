/**
 * The launch protocol, Node's side (DESIGN.md, Processes). The numbered sync
 * points match the comments in crates/tsbox-init/src/main.rs.
 */
import { Socket } from 'node:net';
import { closeSync, openSync, readSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { ReadStream } from 'node:tty';

import { gc, ownV1Procs, prepareCgroup, readProcSource, type Cgroup, type PreparedCgroup, type ProcSource } from '../cgroups/index.js';
import { limitsOf, type ResolvedOptions } from '../config/schema.js';
import { TsboxError, fromSystemError, type FailureReport } from '../errors.js';
import { computeMaps, formatMap, writeMaps, type IdMaps } from '../idmap/index.js';
import { loadNative, type NativeChannel, type NativeHelper } from '../native.js';
import { AbortError, Container } from './container.js';
import { buildPlan } from './plan.js';

/** Messages from tsbox-init (tsbox_core::HelperMsg). */
export type HelperMsg =
  | { type: 'cloned'; pid: number; placed: boolean }
  | { type: 'started' }
  | { type: 'pty' }
  | ({ type: 'failed' } & FailureReport)
  | { type: 'exited'; code: number | null; signal: number | null; rusage: { userUsec: number; systemUsec: number; maxRssKib: number } };

export function traceLine(t0: bigint, what: string): void {
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stderr.write(`tsbox[${process.pid}] +${ms.toFixed(3)}ms ${what}\n`);
}

export async function recv(ch: NativeChannel): Promise<HelperMsg | null> {
  const raw = await ch.recv();
  return raw === null ? null : (JSON.parse(raw) as HelperMsg);
}

/**
 * Sends to the helper. When it is gone (EPIPE), the report it left before
 * exiting says why, and that is what the caller gets: the helper's
 * `uid_map: EINVAL`, not `send: Broken pipe`.
 */
async function send(ch: NativeChannel, msg: object, fds: number[] = []): Promise<void> {
  try {
    if (fds.length > 0) ch.sendFds(JSON.stringify(msg), fds);
    else ch.send(JSON.stringify(msg));
  } catch (err) {
    for (let m = await recv(ch).catch(() => null); m !== null; m = await recv(ch).catch(() => null)) {
      if (m.type === 'failed') throw new TsboxError(m);
    }
    throw err;
  }
}

type StdioMode = 'inherit' | 'pipe' | 'ignore';

function stdioFor(o: ResolvedOptions): [StdioMode, StdioMode, StdioMode] {
  // With a tty the command's stdio is the terminal; the helper's own stderr
  // still carries --trace.
  if (o.tty) return ['ignore', 'ignore', 'inherit'];
  return typeof o.stdio === 'string' ? [o.stdio, o.stdio, o.stdio] : o.stdio;
}

/** The terminal's master as one duplex stream (as node-pty does). */
function openTerminal(fd: number): ReadStream {
  const t = new ReadStream(fd);
  // EIO is how a pty master says the last slave has closed: the end, not an error.
  t.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EIO') t.emit('terminal-error', err);
  });
  return t;
}

function hold(stream: Readable | null): Readable | null {
  if (!stream) return null;
  const out = new PassThrough();
  stream.pipe(out);
  return out;
}

/** A stream over our end of a stdio pipe, or null when the stream was not piped. */
function pipeStream(fd: number, readable: boolean): Socket | null {
  if (fd < 0) return null;
  const socket = new Socket({ fd, readable, writable: !readable });
  // The other end going away is how a container's output ends, not a failure.
  socket.on('error', () => {});
  return socket;
}

const SIGNALS = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/**
 * Resolves when the helper has exited and is reaped. Not when its output has
 * been read: output nobody reads must not keep a finished container waiting.
 */
function closed(helper: NativeHelper): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return helper.wait().then((exit) => ({
    code: exit.code ?? null,
    signal: exit.signal !== undefined && exit.signal !== null ? (SIGNALS.get(exit.signal) ?? null) : null,
  }));
}

/** A failure the helper could not report (it died, or never started). */
function helperDied(how: { code: number | null; signal: NodeJS.Signals | null }, stage: string): TsboxError {
  return new TsboxError({
    step: 'monitor',
    errno: 0,
    path: null,
    detail: `tsbox-init ended ${how.signal ? `by ${how.signal}` : `with status ${how.code}`} ${stage}`,
    hint: 'this is a bug in tsbox or a signal from outside; run with --trace to see the last step',
  });
}

/**
 * Starts a container running `command` and returns once the command has been
 * exec'd (or throws the report of the step that failed).
 */
export interface LaunchExtras {
  /** Kills the container when aborted. */
  signal?: AbortSignal | undefined;
  /** Exec into this running container instead of creating one (and its cgroup). */
  join?: { pid: number; hostname: string; cgroup: Cgroup | null } | undefined;
  /** The caller set a resource limit (so a cgroup is required, even rootless). */
  explicitLimits?: boolean | undefined;
}

export async function launch(command: string[], o: ResolvedOptions, extras: LaunchExtras = {}): Promise<Container> {
  if (extras.signal?.aborted) throw new AbortError(extras.signal.reason);
  const t0 = process.hrtime.bigint();
  const trace = o.trace ? (what: string) => traceLine(t0, what) : undefined;
  const native = loadNative();
  const id = containerId();
  const notices: string[] = [];
  // Whatever exists is undone, newest first, on every failure path.
  const undo: (() => void)[] = [];
  const cleanup = () => {
    // splice: each undo runs once, even if cleanup is reached twice.
    for (const u of undo.splice(0).reverse()) {
      try {
        u();
      } catch {
        // Keep undoing: the original failure is what the caller needs to see.
      }
    }
  };

  // Where this process's cgroups are, read once for the prewarm and the
  // container's cgroup (exec uses the container's).
  const proc = extras.join ? null : readProcSource();
  // As root on v1 and hybrid the helper moves the child into its cgroups, and
  // that move waits for an RCU grace period (several ms after an idle spell).
  // A move of this process into the cgroup it is in, on a thread, starts that
  // wait now, and the helper's move shares it.
  if (proc && process.getuid?.() === 0) prewarmCgroupMove(native, proc);

  // (1) The helper first, with its end of the channel as fd 3: its exec and
  // start-up run on another core while this thread decides the rest. It waits
  // for the plan and exits when the channel closes without one.
  // posix_spawn from the addon: nothing of Node is copied, and no code runs
  // in the child before tsbox-init (DESIGN.md, Processes).
  const ch = new native.binding.Channel();
  let helper: NativeHelper;
  try {
    helper = native.binding.spawnHelper(native.initPath, stdioFor(o), ch.childFd);
  } catch (err) {
    ch.close();
    throw new TsboxError(
      { step: 'spawn_helper', errno: 0, path: native.initPath, detail: (err as Error).message, hint: 'reinstall tsbox, or point TSBOX_NATIVE_DIR at a build holding tsbox-init' },
      { cause: err },
    );
  } finally {
    ch.closeChild();
  }
  const stdin = pipeStream(helper.takePipe(0), false);
  const stdoutPipe = pipeStream(helper.takePipe(1), true);
  const stderrPipe = pipeStream(helper.takePipe(2), true);
  // Output is held in our own streams from the start: a container can finish
  // before the caller attaches a reader.
  const stdout = hold(stdoutPipe);
  const stderr = hold(stderrPipe);
  const done = closed(helper);
  let terminal: ReadStream | undefined;
  const fail = async (err: TsboxError): Promise<never> => {
    // Closing the channel makes the helper kill the child and exit.
    ch.close();
    stdin?.destroy();
    terminal?.destroy();
    await done;
    cleanup();
    throw err;
  };
  trace?.(`helper: ${native.initPath} pid=${helper.pid}, container ${id.slice(0, 12)}`);

  // (2) Everything is decided before anything of the container exists: maps,
  // cgroup, plan.
  let maps: IdMaps | null;
  let cgroup: Cgroup | null = null;
  // As root on v1 and hybrid the helper places the child itself, after clone:
  // the cgroup is made while it clones, and it is told when it exists.
  let later: PreparedCgroup | null = null;
  let plan;
  try {
    // Exec joins the container's user namespace, whose maps are written already.
    maps = extras.join ? null : computeMaps(o, id);
    if (maps?.release) undo.push(maps.release);
    if (maps?.notice) notices.push(maps.notice);
    const prepared = proc ? prepareContainerCgroup(id, o, proc, trace) : null;
    if (prepared && prepared.mode !== 'v2' && process.getuid?.() === 0) later = prepared;
    else if (prepared) cgroup = createContainerCgroup(prepared, extras, notices);
    if (cgroup) undo.push(() => cgroup!.destroy());
    const cgroupInfo = extras.join?.cgroup ?? cgroup ?? later;
    plan = buildPlan(command, o, {
      join: extras.join?.pid,
      hostname: extras.join?.hostname ?? o.hostname ?? id.slice(0, 12),
      traceT0Ns: t0,
      planVersion: native.binding.PLAN_VERSION,
      compileSeccomp: native.binding.compileSeccomp,
      // Idmapped mounts need CAP_SYS_ADMIN where the filesystems live: root only.
      idmap: maps !== null && process.getuid?.() === 0 && maps.uid.some((m) => m.size > 1),
      cgroup: cgroupInfo ? { mode: cgroupInfo.mode, v2Path: cgroupInfo.v2Path, hierarchies: Object.keys(cgroupInfo.paths) } : null,
      // The helper places a new container (exec: Node places the joining process).
      cgroupProcs: cgroup || later ? [...prepared!.procsFiles] : [],
      awaitCgroup: later !== null,
      // The helper writes what needs no setuid helper; Node runs newuidmap.
      idMaps: maps && maps.via === 'direct' ? { setgroups: maps.setgroups, uidMap: formatMap(maps.uid), gidMap: formatMap(maps.gid) } : null,
    });
  } catch (err) {
    return fail(err instanceof TsboxError ? err : fromSystemError('launch', err, 'prepare the container'));
  }

  // From here on every failure, thrown or reported, goes through fail() once.
  let cloned: Extract<HelperMsg, { type: 'cloned' }>;
  let started: HelperMsg | null;
  let terminalFd: number | undefined;
  try {
    // The id range's lock goes with the plan: tsbox-init holds it until the
    // container's last process is gone, even if this process dies first.
    await send(ch, { type: 'plan', ...plan }, maps?.lock ? [maps.lock.fd] : []);
    if (later) {
      cgroup = later.create();
      undo.push(() => cgroup!.destroy());
      await send(ch, { type: 'cgroupReady' });
    }

    // (3) Cloned. The helper has written the id maps and places the child in
    // its cgroup; what is left to Node: newuidmap, and placing a process that
    // joins a container. Then Node lets the child go.
    const msg = await recv(ch);
    if (msg === null) throw helperDied(await done, 'before cloning the container');
    if (msg.type === 'failed') throw new TsboxError(msg);
    if (msg.type !== 'cloned') throw helperDied({ code: null, signal: null }, `out of order (${msg.type})`);
    cloned = msg;
    const into = cgroup ?? extras.join?.cgroup;
    if (into && !cloned.placed) {
      into.place(cloned.pid);
      trace?.(`cgroup: pid ${cloned.pid} placed in ${Object.values(into.paths).join(', ')}`);
    }
    if (plan.idMaps === null) {
      if (maps) writeMaps(cloned.pid, maps, trace);
      await send(ch, { type: 'go' });
    }

    // (4) The child sets itself up (handing over its terminal, with tty) and execs.
    started = await recv(ch);
    while (started?.type === 'pty') {
      const fd = ch.takeFd();
      if (fd >= 0) {
        terminal = openTerminal(fd);
        terminalFd = fd;
      }
      started = await recv(ch);
    }
  } catch (err) {
    return fail(err instanceof TsboxError ? err : fromSystemError('launch', err, 'talk to tsbox-init'));
  }
  if (started === null) return fail(helperDied(await done, 'while setting up the container'));
  if (started.type === 'failed') return fail(startFailure(started, cgroup, o));
  return new Container({
    id,
    options: o,
    hostname: plan.hostname,
    pid: cloned.pid,
    stdin,
    channel: ch,
    closed: done,
    first: started.type === 'exited' ? started : null,
    trace,
    notices,
    release: cleanup,
    timeout: o.timeout,
    signal: extras.signal,
    terminal,
    terminalFd,
    stdout,
    stderr,
    cgroup: cgroup ?? extras.join?.cgroup ?? null,
    ownsCgroup: cgroup !== null,
    startedAt: t0,
  });
}

/**
 * The error of a container that could not start. When its first process died
 * during setup and the kernel's OOM killer was at work in its cgroup, that is
 * the cause to name.
 */
function startFailure(report: FailureReport, cgroup: Cgroup | null, o: ResolvedOptions): TsboxError {
  if (report.step !== 'start' || !cgroup) return new TsboxError(report);
  let oomKills = 0;
  try {
    oomKills = cgroup.stats().memory.oomKills ?? 0;
  } catch {
    // No stats: the report stands as it is.
  }
  if (oomKills === 0) return new TsboxError(report);
  return new TsboxError({
    ...report,
    detail: `the container was killed by the OOM killer during its setup, before the command started (memory limit ${String(o.memory)} bytes)`,
    hint: 'the memory limit must leave the container a few MB to start in: raise -m/memory',
  });
}

/**
 * 64 hex digits from the kernel's random pool: a container id as Docker's.
 * Read directly: node:crypto alone costs the CLI ~4 ms to load.
 */
function containerId(): string {
  const bytes = Buffer.alloc(32);
  const fd = openSync('/dev/urandom', 'r');
  try {
    if (readSync(fd, bytes) !== bytes.length) throw new Error('short read from /dev/urandom');
  } finally {
    closeSync(fd);
  }
  return bytes.toString('hex');
}

let collected = false;

/** See launch(); a miss only costs the time it would have saved. */
function prewarmCgroupMove(native: ReturnType<typeof loadNative>, proc: ProcSource): void {
  try {
    const procs = ownV1Procs(proc);
    if (procs !== null) native.binding.prewarmCgroupMove(procs);
  } catch {
    // A layout ts/cgroups will report on properly.
  }
}

/**
 * Where the container's cgroup goes, its limits checked; nothing made yet.
 * Orphans of crashed tsbox processes are collected once per process, while
 * the first container starts rather than before (a few ms of cgroupfs walks,
 * cold): by the time it runs this container's marker and cgroup exist, so gc
 * takes them for what they are, live.
 */
function prepareContainerCgroup(id: string, o: ResolvedOptions, proc: ProcSource, trace?: (l: string) => void): PreparedCgroup {
  if (!collected) {
    collected = true;
    setImmediate(() => {
      try {
        const removed = gc();
        if (removed.length > 0) trace?.(`cgroup: collected ${removed.length} orphaned cgroup(s) of crashed runs`);
      } catch {
        // Collection is best effort; the next start tries again.
      }
    });
  }
  return prepareCgroup(id, limitsOf(o), { proc, ...(o.cgroupParent ? { parent: o.cgroupParent } : {}), ...(trace ? { trace } : {}) });
}

/**
 * The container's cgroup with its limits written. An unprivileged caller
 * that asked for no limit and may not create cgroups runs without one, with a
 * notice; any limit it did ask for is an error, never silently dropped.
 */
function createContainerCgroup(prepared: PreparedCgroup, extras: LaunchExtras, notices: string[]): Cgroup | null {
  try {
    return prepared.create();
  } catch (err) {
    const rootless = process.getuid?.() !== 0;
    const denied = err instanceof TsboxError && [1, 13, 30].includes(err.errno);
    if (rootless && denied && !extras.explicitLimits) {
      notices.push(`tsbox: note: no cgroup for this container (${err.message}); the default pids limit does not apply — delegate a cgroup to your user (systemd: Delegate=yes) to get limits`);
      return null;
    }
    throw err;
  }
}
