/**
 * The launch, Node's side of the phases (tsbox_core::Phase; the helper's
 * side is crates/tsbox-init/src/helper/mod.rs), one place each:
 *
 * 1. `plan`: the helper is spawned first, and the two plans are built while
 *    it starts; the SandboxPlan goes with the id range's lock, the
 *    ProcessPlan right after it (phase 8, pipelined: the helper hands it to
 *    the child once its sandbox is ready).
 * 2. `cloned`: the child exists.
 * 3. `maps`: Node writes the maps only when they need newuidmap.
 * 4. `cgroup`: on v1 and hybrid as root, Node makes the cgroup while the
 *    helper clones, and says so; the helper places the child.
 * 5. `network`: for a container that asks for a network, ts/network
 *    (loaded only then): decided before anything exists, then, once the
 *    container is cloned and before `go`, its interfaces (CNI ADD) and
 *    their undo (DEL). `none` (default) is the child's loopback alone.
 * 7. `ready`, 9. `started`: the sandbox is built; the process was exec'd.
 */
import { closeSync, existsSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ReadStream } from 'node:tty';

import { gc, ownV1Procs, prepareParsedCgroup, readProcSource, type Cgroup, type DeviceRuleWrite, type PreparedCgroup, type ProcSource } from '../cgroups/index.js';
import { parseProcCgroup, selfMoveSkipsGracePeriod } from '../cgroups/detect.js';
import { moveBack, scopeLimits, startScope, type SystemdScope } from '../cgroups/systemd.js';
import { DEFAULT_LOG_MAX_SIZE, limitsOf, resolvedLimitsOf, type ResolvedOptions } from '../config/schema.js';
import { AbortError, TsboxError, fromSystemError, type FailureReport } from '../errors.js';
import { computeMaps, formatMap, writeMaps, type IdMaps } from '../idmap/index.js';
import { ensureStateRoot, inUserNamespace, stateRoot } from '../state-root.js';
import { loadNative, type NativeFileLock, type NativeHelper } from '../native.js';
import { Container, keepAlive, type ContainerInit } from './container.js';
import { releaseLater } from './release.js';
import { NETWORK_DIR } from '../network/records.js';
import type { Refusals } from '../network/refused.js';
import { buildPlan, planFor, type PlanContext, type ProcessPlan, type ProcessTemplate, type SandboxPlan } from './plan.js';
import { HelperGone, helperDied, recv, SIGNAL_NAMES, spawnFailure, toHelper, traceLine, traceStart, type HelperMsg } from './protocol.js';
import { hold, pipeStream, recvStarted, takeTerminal } from './streams.js';
import { checkName, createContainerDir, gcStates, OCI_VERSION, removeContainerDir, writeState, type ContainerState } from './state.js';



function stdioFor(o: ResolvedOptions, log: number | null): [string, string, string] {
  // Detached: nothing to read from, and the output goes to the log.
  if (log !== null) return ['ignore', `fd:${log}`, `fd:${log}`];
  // With a tty the command's stdio is the terminal; the helper's own stderr
  // still carries --trace.
  if (o.tty) return ['ignore', 'ignore', 'inherit'];
  return typeof o.stdio === 'string' ? [o.stdio, o.stdio, o.stdio] : o.stdio;
}

/**
 * Resolves when the helper has exited and is reaped. Not when its output has
 * been read: output nobody reads must not keep a finished container waiting.
 */
function closed(helper: NativeHelper): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  // Awaited without holding the event loop open (a Container can be
  // unref'd): the launch, then the Container, keep Node up for it.
  return new Promise((resolve, reject) => {
    helper.waitWeak((err, exit) => {
      if (err) return reject(err);
      resolve({ code: exit.code ?? null, signal: exit.signal !== undefined && exit.signal !== null ? (SIGNAL_NAMES.get(exit.signal) ?? null) : null });
    });
  });
}

/**
 * Starts a container running `command` and returns once the command has been
 * exec'd (or throws the report of the step that failed).
 */
export interface LaunchExtras {
  /** Kills the container when aborted. */
  signal?: AbortSignal | undefined;
  /** Build the sandbox and stop at `ready`: the process comes with Container.start() (create). */
  deferProcess?: boolean | undefined;
  /**
   * Build the sandbox and stop at `ready` with no process at all: a pool
   * slot (ts/pool), whose process comes later from handOver(). `command`
   * is then only what its state shows until then.
   */
  pooled?: boolean | undefined;
  /**
   * A pool slot's likely process (the pool's, without a command): the
   * sandbox forks and prepares it while it waits (SandboxPlan.expectedProcess).
   */
  expected?: ProcessTemplate | undefined;
  /** The caller set a resource limit (so a cgroup is required, even rootless). */
  explicitLimits?: boolean | undefined;
  /**
   * Built off every caller's path (a pool's refill): the launch lets the
   * event loop run between its steps (see `breathe` in launchSandbox).
   */
  background?: boolean | undefined;
  /** An image's lower layers under `o.rootfs` (its top layer), top first. */
  layers?: readonly string[] | undefined;
  /**
   * The image store's launch lock (Store.launching), released once the
   * state records `layers`: a prune waits until then.
   */
  imageLock?: { unlock(): void } | undefined;
  /** Notices from before the launch (what of an image's config was left out), first among the container's. */
  notices?: readonly string[] | undefined;
  /**
   * An OCI bundle's container (ts/oci): its own plans instead of tsbox's,
   * its id as the container's name, its stdio the caller's even though it is
   * detached, and the bundle, annotations and hooks in its state.
   */
  oci?: {
    plans: (ctx: PlanContext) => { sandbox: SandboxPlan; process: ProcessPlan };
    state: Pick<ContainerState, 'bundle' | 'annotations' | 'ociVersion' | 'hooks' | 'oci'>;
    /** linux.cgroupsPath: the container's cgroup itself (CreateOptions.path). */
    cgroupsPath?: string | undefined;
    /** --systemd-cgroup: the container's cgroup is this scope, which systemd makes (ts/cgroups/systemd.ts). */
    systemd?: SystemdScope | undefined;
    /** Descriptors of this process the container's first process gets as 3 and up (--preserve-fds, LISTEN_FDS). */
    preserveFds?: number[] | undefined;
    /** linux.resources.devices for its v1 device cgroup (CreateOptions.devices). */
    deviceRules?: DeviceRuleWrite[] | null | undefined;
    /**
     * The runtime's hooks (prestart, createRuntime), run once the container
     * is cloned (its pid, as the host sees it), while its first process
     * waits before pivot_root (`sandbox.runtimeHooks`). A throw fails the launch.
     */
    runtimeHooks?: ((pid: number) => void) | undefined;
  } | undefined;
}

export async function launch(command: string[], o: ResolvedOptions, extras: LaunchExtras = {}): Promise<Container> {
  // The helper's exit is awaited weakly (closed()): until the Container
  // holds the event loop for it, the launch does.
  const keep = keepAlive();
  try {
    const { init, first } = await launchSandbox(command, o, extras);
    return new Container({ ...init, first, timeout: o.timeout, signal: extras.signal, startable: extras.deferProcess === true });
  } finally {
    clearInterval(keep);
  }
}

/**
 * A sandbox built and waiting at `ready` for a process it has not been
 * given (phase 8 not sent): a pool slot. handOver() gives it one.
 */
export interface ReadySandbox {
  /** What the Container will be made of; its pid is the sandbox's PID 1. */
  init: SandboxParts;
  /** The sandbox's plan (its hostname is the process's HOSTNAME). */
  sandbox: SandboxPlan;
}

/** A Container's parts that come from its sandbox; the rest comes with its process. */
export type SandboxParts = Omit<ContainerInit, 'first' | 'timeout' | 'signal' | 'startable'>;

/** Builds a sandbox with no process, for a pool (see ReadySandbox). */
export async function launchReady(o: ResolvedOptions, extras: Omit<LaunchExtras, 'pooled' | 'deferProcess' | 'oci'> = {}): Promise<ReadySandbox> {
  const keep = keepAlive();
  try {
    const { init, sandbox } = await launchSandbox([], o, { ...extras, pooled: true });
    return { init, sandbox };
  } finally {
    clearInterval(keep);
  }
}

/**
 * Phase 8 for a ready sandbox: sends `plan` and resolves once it was exec'd,
 * with the Container (as launch() does), or rejects with the report of the
 * step that failed. `how` gives the process's timeout and abort signal.
 */
export async function handOver(ready: ReadySandbox, plan: ProcessPlan, how: { timeout?: number | undefined; signal?: AbortSignal | undefined }): Promise<Container> {
  const { init } = ready;
  const ch = init.channel;
  const startedAt = process.hrtime.bigint();
  let started: HelperMsg | null;
  let terminal: ReadStream | undefined;
  let terminalFd: number | undefined;
  try {
    await toHelper.process(ch, plan);
    init.trace?.(`hand-over: the process goes to the sandbox ${init.id.slice(0, 12)}`);
    ({ msg: started, terminal, terminalFd } = await recvStarted(ch));
  } catch (err) {
    // Its monitor killed while the sandbox waited: as a channel that closes before `started` below.
    if (err instanceof HelperGone) throw helperDied(await init.closed, 'while handing over the process');
    throw err instanceof TsboxError ? err : fromSystemError('launch', err, 'talk to tsbox-init');
  }
  if (started === null) throw helperDied(await init.closed, 'while handing over the process');
  if (started.type === 'failed') throw startFailure(started, init.cgroup, init.options);
  return new Container({
    ...init,
    startedAt,
    first: started.type === 'exited' ? started : null,
    timeout: how.timeout,
    signal: how.signal,
    ...(terminal ? { terminal, terminalFd, handles: [...(init.handles ?? []), terminal] } : {}),
  });
}

/** The launch up to `started` (or `ready`, for create and a pool): the Container's parts. */
async function launchSandbox(command: string[], o: ResolvedOptions, extras: LaunchExtras): Promise<{ init: SandboxParts; first: Extract<HelperMsg, { type: 'exited' }> | null; sandbox: SandboxPlan }> {
  if (extras.signal?.aborted) throw new AbortError(extras.signal.reason);
  const t0 = process.hrtime.bigint();
  const trace = o.trace ? (what: string) => traceLine(t0, what) : undefined;
  traceStart(trace);
  const native = loadNative();
  const id = containerId();
  const notices: string[] = [...(extras.notices ?? [])];
  // Whatever exists is undone, newest first, on every failure path.
  const undo: (() => void)[] = [];
  // Whether the state root was accepted (createContainerDir checks it): gc reads it.
  let stateRootChecked = false;
  const cleanup = () => {
    // splice: each undo runs once, even if cleanup is reached twice.
    for (const u of undo.splice(0).reverse()) {
      try {
        u();
      } catch {
        // Keep undoing: the original failure is what the caller needs to see.
      }
    }
    // A launch that fails before the collection's turn still collects: its
    // failure may come of the orphans themselves (cgroup.max.descendants,
    // v1's memory cgroup ids), and the next launch would fail the same way.
    if (stateRootChecked) collectOrphansOnce(trace);
  };

  // Phase 5, network, decided first (ts/network, loaded only for a
  // container that asks for one): a refusal comes before anything exists.
  const net = o.network.mode === 'none' ? null : await (await import('../network/index.js')).prepareNetwork(o.network, o.publish, o, o.publishAll ? o.expose.flat() : null);
  if (net) undo.push(net.cloned);
  // The network's teardown (DEL), run before the result rather than after
  // it: when run() resolves, its address and published ports are free for
  // the next container.
  let netUndo: (() => void) | null = null;
  let networkInfo = net?.info ?? null;
  let refusals: Refusals | undefined;

  // Where this process's cgroups are, read once for the prewarm and the
  // container's cgroup.
  const proc = readProcSource();
  // As root on v1 and hybrid, the helper's own thread enters the container's
  // cgroups and clones there (Linux 6.5+, the host's root: no wait). Where it
  // will move the child by pid instead, that move waits for an RCU grace
  // period (several ms after an idle spell): a move of this process into the
  // cgroup it is in, on a thread, starts that wait now, and the helper's
  // move shares it.
  const root = process.getuid?.() === 0;
  const enterable = root && selfMoveSkipsGracePeriod() && !inUserNamespace();
  if (root && !enterable) prewarmCgroupMove(native, proc);

  // The container's state directory, and a detached container's log in it.
  let dir: string;
  let log: number | null = null;
  const logPath = () => (log !== null ? join(dir, 'container.log') : null);
  const stateOf = (bundle: string): ContainerState => ({
    ociVersion: OCI_VERSION,
    id,
    status: 'creating',
    pid: 0,
    bundle,
    annotations: {},
    ...extras.oci?.state,
    name: o.name ?? null,
    created: new Date().toISOString(),
    monitorPid: 0,
    callerPid: process.pid,
    detached: o.detach,
    command,
    options: o,
    log: logPath(),
    network: networkInfo,
    ...(extras.layers?.length ? { layers: [...extras.layers] } : {}),
  });
  // A name is checked and taken (its state written) under one lock: two
  // launches with the same name cannot both find it free.
  let nameLock: NativeFileLock | null = null;
  try {
    if (o.name !== undefined) {
      nameLock = native.binding.waitLockFile(join(ensureStateRoot(), 'names.lock'), `${id} ${process.pid}\n`);
      checkName(o.name, undefined, extras.oci !== undefined);
    }
    dir = createContainerDir(id);
    stateRootChecked = true;
    undo.push(() => removeContainerDir(dir));
    if (o.detach && !extras.oci) log = openSync(join(dir, 'container.log'), 'a', 0o600);
    if (nameLock) writeState(dir, stateOf(o.rootfs ?? '/'));
  } catch (err) {
    // A log that could not be opened leaves no state directory behind.
    cleanup();
    throw err instanceof TsboxError ? err : fromSystemError('state', err, "create the container's state directory or its log");
  } finally {
    nameLock?.release();
  }
  // (1) The helper next (a detached container's log is its stdout, which
  // the monitor keeps within logMaxSize from a pipe it makes the
  // container's stdout and stderr), with its end of the channel as fd 3:
  // its exec and start-up run on another core while this thread decides
  // the rest. It waits for the plan and exits when
  // the channel closes without one.
  // posix_spawn from the addon: nothing of Node is copied, and no code runs
  // in the child before tsbox-init (DESIGN.md, Processes). It runs on the
  // addon's thread, since it holds its caller until the child has exec'd
  // (0.2 ms back to back, ~0.9 ms after an idle spell): this thread goes on
  // to the plan, and helperPid() has its outcome before the plan goes out.
  const ch = new native.binding.Channel();
  let helper: NativeHelper;
  try {
    helper = native.binding.spawnHelper(native.initPath, stdioFor(o, log), ch.childFd, extras.oci?.preserveFds);
  } catch (err) {
    cleanup();
    ch.close();
    throw spawnFailure(native.initPath, err);
  } finally {
    ch.closeChild();
    if (log !== null) closeSync(log);
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
  /** The helper's pid, once its spawn has returned; a spawn that failed throws as spawn_helper. */
  const helperPid = (): number => {
    try {
      return helper.started();
    } catch (err) {
      throw spawnFailure(native.initPath, err);
    }
  };
  // A refill's steps up to the plan are ~6 ms of synchronous work on this
  // thread (measured on a v1 host: the id range, the cgroup's paths and
  // mkdirs, the plans, the state). The pool's callers meanwhile wait for
  // their containers' messages on this thread: a turn of the event loop
  // between the steps lets those through first (~1-2 ms at most behind a step).
  // A process.exit() meanwhile undoes what exists (the state directory, the
  // id range): synchronous to the end, a launch never left the turn with
  // them and no helper holding the plan that removes them.
  const breathe = extras.background
    ? async () => {
        process.once('exit', cleanup);
        try {
          await new Promise<void>((resolve) => setImmediate(resolve));
        } finally {
          process.off('exit', cleanup);
        }
      }
    : null;
  await breathe?.();

  // Phase 1, plan: everything is decided before anything of the container
  // exists (maps, cgroup, the two plans), then sent.
  let maps: IdMaps | null;
  let cgroup: Cgroup | null = null;
  // As root on v1 and hybrid the helper places the child itself, after clone:
  // the cgroup is made while it clones, and it is told when it exists.
  let later: PreparedCgroup | null = null;
  let plan;
  try {
    maps = computeMaps(o, id);
    if (maps?.release) undo.push(maps.release);
    if (maps?.notice) notices.push(maps.notice);
    await breathe?.();
    const prepared = unlessDenied(() => prepareContainerCgroup(id, o, proc, trace, extras.oci), extras, notices);
    // (Not for an OCI bundle's: its mounts may bind the container's own
    // cgroups, which must exist before the helper opens their sources.)
    if (prepared?.mode !== 'v2' && root && !extras.oci) later = prepared;
    else if (prepared) {
      // systemd makes a scope's cgroup, with the helper in it to clone the
      // container there; the helper goes back once it has (phase 2).
      const scope = extras.oci?.systemd;
      if (scope) startScope(scope, id, helperPid(), scopeLimits(limitsOf(o)), trace);
      cgroup = unlessDenied(() => prepared.create(), extras, notices);
    }
    if (cgroup) undo.push(() => cgroup!.destroy());
    const cgroupInfo = cgroup ?? later;
    const hostname = o.hostname ?? id.slice(0, 12);
    plan = (extras.oci?.plans ?? ((ctx: PlanContext) => buildPlan(command, o, ctx)))({
      hostname,
      traceT0Ns: t0,
      planVersion: native.binding.PLAN_VERSION,
      seccomp: native.binding,
      // Idmapped mounts need CAP_SYS_ADMIN where the filesystems live: root only.
      idmap: maps !== null && root && maps.uid.some((m) => m.size > 1),
      cgroup: cgroupInfo ? { mode: cgroupInfo.mode, v2Path: cgroupInfo.v2Path, paths: cgroupInfo.paths } : null,
      // Phase 3, decided once: the helper writes what needs no setuid helper; Node runs newuidmap.
      maps: maps === null ? { writer: 'none' } : maps.via === 'direct' ? { writer: 'helper', maps: { setgroups: maps.setgroups, uidMap: formatMap(maps.uid), gidMap: formatMap(maps.gid) } } : { writer: 'node' },
      // Phase 4, decided once: clone3 into the v2 cgroup; on v1 as the
      // host's root on Linux 6.5+, the helper's thread enters the cgroups
      // and clones there; otherwise the helper places the child.
      cgroupPhase: !cgroupInfo
        ? { how: 'none' }
        : cgroupInfo.v2Path
          ? { how: 'cloneInto', dir: cgroupInfo.v2Path, procs: [...prepared!.procsFiles] }
          : enterable && prepared!.enter
            ? { how: 'enter', tasks: [...prepared!.enter.tasks], home: [...prepared!.enter.home], dir: prepared!.paths.unified ?? null, procs: [...prepared!.procsFiles], madeByNode: later !== null }
            : { how: 'place', procs: [...prepared!.procsFiles], madeByNode: later !== null },
      cgroupKept: prepared?.kept ?? [],
      usageFiles: cgroupInfo?.usageFiles ?? [],
      expectedProcess: extras.expected ? planFor(extras.expected, [], hostname) : null,
      control: join(dir, 'control.sock'),
      layers: extras.layers,
      detach: o.detach,
      logMaxSize: log !== null ? (o.logMaxSize ?? DEFAULT_LOG_MAX_SIZE) : null,
      netnsPath: net?.netnsPath ?? null,
    });
    // Where the kernel would have let the helper enter but this cgroup may
    // not be entered (a joined one, a pids limit below 2), the prewarm starts
    // now, before the helper's mounts are done.
    if (plan.sandbox.cgroup.how === 'place' && enterable) prewarmCgroupMove(native, proc);
    trace?.('plan: built');
    // Phase 5, network: what of the plan it changes (a bridged container's /etc/hosts).
    net?.plan(plan.sandbox, dir);
    writeState(dir, stateOf(plan.sandbox.rootfs.path));
    // The state names the image's layers now: a prune sees them in use.
    extras.imageLock?.unlock();
  } catch (err) {
    return fail(err instanceof TsboxError ? err : fromSystemError('launch', err, 'prepare the container'));
  }
  const { sandbox, process: first } = plan;
  const control = sandbox.control!;

  // From here on every failure, thrown or reported, goes through fail() once.
  let cloned: Extract<HelperMsg, { type: 'cloned' }>;
  let started: HelperMsg | null;
  let terminalFd: number | undefined;
  try {
    // The plan goes to a helper that was started (or the spawn's own error).
    const pid = helperPid();
    trace?.(`helper: ${native.initPath} pid=${pid}, container ${id.slice(0, 12)}`);
    // The id range's lock goes with the plan: tsbox-init holds it until the
    // container's last process is gone, even if this process dies first.
    await toHelper.plan(ch, sandbox, maps?.lock ? [maps.lock.fd] : []);
    trace?.('plan: sent');
    // Phase 8, pipelined: the helper hands it over once the sandbox is ready
    // (create: the monitor holds it until start, from this or any process).
    if (extras.pooled) {
      // A pool slot: its process comes with handOver().
    } else if (extras.deferProcess) await toHelper.hold(ch, first);
    else await toHelper.process(ch, first);
    // Phase 4, Node's part: the cgroup, made while the helper clones.
    if (later) {
      await breathe?.();
      cgroup = later.create();
      undo.push(() => cgroup!.destroy());
      await toHelper.cgroup(ch);
    }
    collectOrphansOnce(trace);

    // Phase 2, cloned.
    const msg = await recv(ch);
    if (msg === null) throw helperDied(await done, 'before cloning the container');
    if (msg.type === 'failed') throw new TsboxError(msg);
    if (msg.type !== 'cloned') throw helperDied({ code: null, signal: null }, `out of order (${msg.type})`);
    cloned = msg;
    if (extras.oci?.systemd) {
      // Back where this process is: its cgroup as read at the launch's start.
      const home = parseProcCgroup(proc.cgroup).unified;
      if (home === null) throw new TsboxError({ step: 'cgroup', errno: 2, path: '/proc/self/cgroup', detail: 'this process has no cgroup v2 of its own to move the helper back to from the scope', hint: 'the systemd driver needs a pure cgroup v2 host' });
      for (const moved of new Set([pid, cloned.monitor])) moveBack(moved, home, trace);
    }
    // A detached container's cgroup is its monitor's to keep: gc takes it
    // for an orphan only once the monitor is gone, not this process.
    if (o.detach) cgroup?.setOwner(cloned.monitor);
    // Phase 3, Node's part: maps that need newuidmap.
    if (sandbox.maps.writer === 'node' && maps) {
      writeMaps(cloned.pid, maps, trace);
      await toHelper.maps(ch);
    }
    // Phase 5, network: the helper joined any namespace it was to join
    // (what held it open goes); a namespace of the container's own gets its
    // interfaces while the child waits before `go`. Their undo is DEL.
    net?.cloned();
    if (net?.attach) {
      const attached = await net.attach(id, cloned.pid, cloned.monitor, !o.detach, trace);
      undo.push(attached.detach);
      netUndo = attached.detach;
      networkInfo = attached.info;
      refusals = attached.refusals;
      if (refusals?.off) notices.push(`tsbox: refused connections are not reported (the allowlist holds): ${refusals.off}`);
      writeState(dir, stateOf(plan.sandbox.rootfs.path));
      await toHelper.network(ch);
    }
    // The runtime's OCI hooks, once the container is in its cgroups, while
    // its first process waits before pivot_root.
    if (sandbox.runtimeHooks) {
      const placed = await recv(ch);
      if (placed === null) throw helperDied(await done, 'before the runtime hooks');
      if (placed.type === 'failed') throw new TsboxError(placed);
      if (placed.type !== 'placed') throw helperDied({ code: null, signal: null }, `out of order (${placed.type})`);
      extras.oci?.runtimeHooks?.(cloned.pid);
      await toHelper.runtimeHooks(ch);
    }

    // Phases 7 to 9: the sandbox is ready, the process prepares (handing
    // over its terminal, with tty) and execs.
    started = await recv(ch);
    while ((started?.type === 'ready' && !extras.deferProcess && !extras.pooled) || started?.type === 'pty') {
      if (started.type === 'pty') {
        const t = takeTerminal(ch);
        if (t) ({ stream: terminal, fd: terminalFd } = t);
      }
      started = await recv(ch);
    }
  } catch (err) {
    if (err instanceof HelperGone) return fail(helperDied(await done, 'while setting up the container'));
    return fail(err instanceof TsboxError ? err : fromSystemError('launch', err, 'talk to tsbox-init'));
  }
  if (started === null) return fail(helperDied(await done, 'while setting up the container'));
  if (started.type === 'failed') return fail(startFailure(started, cgroup, o));
  // After the container's result, not before it (ts/runtime/release.ts).
  let release: () => void | Promise<void> = () => {
    if (netUndo) {
      const i = undo.indexOf(netUndo);
      if (i >= 0) undo.splice(i, 1);
      try {
        netUndo();
      } catch {
        // DEL's failures leave the record for gc, which tries again.
      }
    }
    return releaseLater(cleanup);
  };
  if (o.detach) {
    // The monitor keeps the container, its ids and its cgroup from now on,
    // and its state stays for `tsbox ps -a` until `tsbox rm`.
    maps?.lock?.forget();
    undo.splice(0);
    release = () => {};
  }
  return {
    sandbox,
    first: started.type === 'exited' ? started : null,
    init: {
      id,
      options: o,
      pid: cloned.pid,
      control,
      stdin,
      channel: ch,
      closed: done,
      handles: [stdin, stdoutPipe, stderrPipe, terminal],
      trace,
      notices,
      release,
      terminal,
      terminalFd,
      stdout,
      stderr,
      cgroup,
      startedAt: t0,
      network: networkInfo,
      // A detached container's are counted by its allowlist's keeper (its state shows them).
      refusals: o.detach ? undefined : refusals,
    },
  };
}

/**
 * The error of a container that could not start. When its first process died
 * during setup and the kernel's OOM killer was at work in its cgroup, that is
 * the cause to name.
 */
export function startFailure(report: FailureReport, cgroup: Pick<Cgroup, 'usage'> | null, o: Pick<ResolvedOptions, 'memory'>): TsboxError {
  if (report.step !== 'start' || !cgroup) return new TsboxError(report);
  let oomKills = 0;
  try {
    oomKills = cgroup.usage().oomKills ?? 0;
  } catch {
    // No stats: the report stands as it is.
  }
  if (oomKills === 0) return new TsboxError(report);
  // ENOMEM: what it ran out of, and what tells it from a sandbox that died of something else (ts/pool).
  return new TsboxError({
    ...report,
    errno: 12,
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


/** Whether a bridged container's record is there to collect (the directory itself stays, with its lock and IPAM store). */
function networkRecordsLeft(): boolean {
  try {
    return readdirSync(NETWORK_DIR).some((n) => n.endsWith('.json'));
  } catch {
    return false;
  }
}

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
 * Orphans of crashed tsbox processes, collected once per process while the
 * first container starts rather than before (a few ms of cgroupfs walks,
 * cold): launch() calls this once the helper has all it needs to go on, so
 * the walks run while it clones and sets up (never while it waits for this
 * process to make its cgroup), or when it fails before that. By then this
 * container's marker and cgroup exist, or are gone, so gc takes them for
 * what they are.
 */
function collectOrphansOnce(trace?: (l: string) => void): void {
  if (collected) return;
  collected = true;
  setImmediate(() => {
    try {
      const states = gcStates();
      const removed = gc();
      if (removed.length + states.length > 0) trace?.(`gc: collected ${removed.length} orphaned cgroup(s) and ${states.length} state(s) of crashed runs`);
      // Bridged containers' networks (ts/network), loaded only where there were some.
      if (process.getuid?.() === 0 && networkRecordsLeft()) void import('../network/bridge.js').then((m) => m.gcNetworks(undefined, undefined, undefined, { endProcesses: false })).catch(() => {});
      else if (process.getuid?.() !== 0 && existsSync(join(stateRoot(), 'network'))) void import('../network/pasta.js').then((m) => m.gcPasta(undefined, undefined, undefined, { endProcesses: false })).catch(() => {});
    } catch {
      // Collection is best effort; the next start tries again.
    }
  });
}

/** Where the container's cgroup goes, its limits checked; nothing made yet. */
function prepareContainerCgroup(id: string, o: ResolvedOptions, proc: ProcSource, trace?: (l: string) => void, oci?: LaunchExtras['oci']): PreparedCgroup {
  const path = oci?.cgroupsPath;
  const devices = oci?.deviceRules ?? undefined;
  const scope = oci?.systemd;
  return prepareParsedCgroup(id, resolvedLimitsOf(o), { proc, ...(o.cgroupParent ? { parent: o.cgroupParent } : {}), ...(scope ? { path: scope.path, systemd: scope.unit } : path !== undefined ? { path } : {}), ...(devices ? { devices } : {}), ...(trace ? { trace } : {}) });
}

/**
 * The container's cgroup decided (`fn` is prepare) or made with its limits
 * written (create). An unprivileged caller that asked for no limit and has
 * no cgroup it may manage runs without one, with a notice; any limit it did
 * ask for is an error, never silently dropped.
 */
function unlessDenied<T>(fn: () => T, extras: LaunchExtras, notices: string[]): T | null {
  try {
    return fn();
  } catch (err) {
    // Root of a user namespace an ordinary user made (rootless podman) is that user here.
    const rootless = process.getuid?.() !== 0 || inUserNamespace();
    const denied = err instanceof TsboxError && [1, 13, 30].includes(err.errno);
    if (rootless && denied && !extras.explicitLimits) {
      notices.push(noCgroupNote(err.message));
      return null;
    }
    throw err;
  }
}

/**
 * The note for an ordinary user's container that runs without a cgroup:
 * what was refused, what that costs, and what would give one. Without a
 * systemd user session (no $XDG_RUNTIME_DIR, no /run/user/UID) there is no
 * delegated cgroup to be had, whatever systemd's Delegate= says.
 */
export function noCgroupNote(refused: string, env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0, exists: (path: string) => boolean = existsSync): string {
  const session = Boolean(env.XDG_RUNTIME_DIR) || exists(`/run/user/${uid}`);
  const fix = session
    ? 'to get limits, run tsbox in a cgroup delegated to you: `systemd-run --user --scope -p Delegate=yes tsbox ...` (tsbox does not yet ask systemd for one itself)'
    : `you have no systemd user session here ($XDG_RUNTIME_DIR is unset and /run/user/${uid} does not exist), which is what gives a user a cgroup of its own: log in through a session (ssh, a desktop), or run \`sudo loginctl enable-linger $USER\``;
  return `tsbox: note: no cgroup for this container (${refused}); the default pids limit does not apply — ${fix}`;
}
