/**
 * tsbox as an OCI runtime: the operations of the runtime-spec (create,
 * start, state, kill, delete) with runc's meanings, on the same state
 * directories, monitors and containers as `tsbox run -d` and the API's
 * `create()`. An OCI container is one whose name is its OCI id; it is found
 * by that name exactly.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { containerPids, containerStats, detectCgroupMode, hasV1Devices, isPaused, readProcSource, setPaused, updateCgroup } from '../cgroups/index.js';
import { systemdScope, systemdUnavailable, type SystemdScope } from '../cgroups/systemd.js';
import { TsboxError } from '../errors.js';
import { inUserNamespace } from '../state-root.js';
import type { Hooks } from '../generated/wire.js';
import { loadNative } from '../native.js';
import type { Container } from '../runtime/container.js';
import { ContainerRef } from '../runtime/lifecycle.js';
import { launch } from '../runtime/launch.js';
import { containerDir, findOciState, listStates, liveState, type ContainerState } from '../runtime/state.js';
import { ociContainer, ociLimits, type DeviceControl } from './plan.js';
import { kebab } from '../suggest.js';
import { jsonPath, loadSpec, ociResourcesSchema, parseJsonExact, specError, stringifyExact, type HookName, type OciHook, type SpecProblem } from './spec.js';

/** The runtime-spec state of a container, as `state` prints it and hooks read it. */
export interface OciState {
  ociVersion: string;
  id: string;
  /** `paused` as runc's: its cgroup is frozen. */
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
  /** When it was created (RFC 3339), as runc adds it. */
  created: string;
  owner: string;
}

/** The OCI container named `id` (its name, exactly); throws "does not exist", which podman and containerd look for. */
export function findOci(id: string | undefined, what: string): { ref: ContainerRef; state: ContainerState } {
  if (!id) throw new TsboxError({ step: 'config', errno: 22, path: 'ID', detail: `${what} needs the container's id`, hint: null });
  const found = findOciState(id);
  if (!found) throw new TsboxError({ step: 'state', errno: 2, path: id, detail: 'container does not exist', hint: '`tsbox list` lists the containers' });
  return { ref: new ContainerRef(found.dir, found.state.id), state: found.state };
}

export function ociState(s: ContainerState): OciState {
  const annotations = s.annotations && Object.keys(s.annotations).length > 0 ? s.annotations : undefined;
  return {
    ociVersion: s.ociVersion,
    id: s.name ?? s.id,
    status: s.status === 'running' && isPaused(s.id) ? 'paused' : s.status,
    pid: s.status === 'stopped' ? 0 : s.pid,
    bundle: s.bundle,
    ...(annotations ? { annotations } : {}),
    created: s.created,
    owner: '',
  };
}

export interface CreateOptions {
  bundle: string;
  id: string;
  pidFile?: string | undefined;
  consoleSocket?: string | undefined;
  preserveFds?: number | undefined;
  trace?: boolean | undefined;
  /**
   * runc's --rootless: `true` runs without a cgroup when none may be made
   * (with a note), `false` makes that an error; `auto` (default) is `true`
   * for an ordinary user.
   */
  rootless?: 'auto' | 'true' | 'false' | undefined;
  /** The caller keeps the terminal (a foreground `run`): no console socket is needed. */
  attach?: boolean | undefined;
  /** runc's --systemd-cgroup: the container's cgroup is a systemd scope, from cgroupsPath `slice:prefix:name`. */
  systemdCgroup?: boolean | undefined;
}

/**
 * `create`: builds the container from the bundle and leaves its process
 * waiting for `start`, its stdio this process's. Then oomScoreAdj, the
 * prestart and createRuntime hooks, and the pid file, written atomically.
 * On any failure nothing of the container is left. Returns its state and
 * the handle of the launch (its terminal, with `attach`).
 */
export async function ociCreate(o: CreateOptions): Promise<{ state: OciState; container: Container }> {
  // Paths given relative are the caller's, not the bundle's.
  const bundle = resolve(o.bundle);
  const pidFile = o.pidFile !== undefined ? resolve(o.pidFile) : undefined;
  const { spec, file } = loadSpec(bundle);
  // Socket activation (systemd's LISTEN_FDS, for this process) and
  // --preserve-fds: descriptors 3 and up of this process become the
  // container's 3 and up, as runc passes them. LISTEN_FDS counts only with
  // LISTEN_PID naming this process, as sd_listen_fds() and runc's
  // go-systemd take it: an environment inherited from elsewhere (LISTEN_PID
  // unset, or another process's) would otherwise hand whatever this process
  // has open from 3 up (a directory of the host) to the container.
  const listenFds = process.env.LISTEN_FDS ?? '';
  const listen = process.env.LISTEN_PID === String(process.pid) && /^\d+$/.test(listenFds) ? Number(listenFds) : 0;
  const preserved = Array.from({ length: listen + (o.preserveFds ?? 0) }, (_, i) => 3 + i);
  for (const fd of preserved) {
    try {
      fstatSync(fd);
    } catch (err) {
      throw new TsboxError({ step: 'config', errno: 9, path: '--preserve-fds', detail: `descriptor ${fd} is not open (${(err as NodeJS.ErrnoException).code})`, hint: 'pass N open descriptors from 3 up (after LISTEN_FDS ones)' }, { cause: err });
    }
  }
  if (listen > 0 && spec.process) {
    const env = (spec.process.env ?? []).filter((e) => !e.startsWith('LISTEN_FDS=') && !e.startsWith('LISTEN_PID='));
    spec.process.env = [...env, `LISTEN_FDS=${listen}`, 'LISTEN_PID=1'];
  }
  // A v1 device cgroup carries out the device rules, as runc's, or on pure
  // v2 an eBPF device program on the container's cgroup; root's only.
  // --systemd-cgroup: cgroupsPath is systemd's slice:prefix:name (ts/cgroups/systemd.ts).
  let scope: SystemdScope | undefined;
  if (o.systemdCgroup) {
    const why = systemdUnavailable(detectCgroupMode() === 'v2');
    if (why) throw new TsboxError({ step: 'config', errno: 95, path: '--systemd-cgroup', detail: why, hint: 'leave out --systemd-cgroup (podman: --cgroup-manager cgroupfs)' });
    scope = systemdScope(spec.linux?.cgroupsPath ?? undefined, o.id);
    if (spec.linux) delete spec.linux.cgroupsPath;
  }
  const c = ociContainer(spec, bundle, file, o.trace === true, deviceControl());
  c.options.name = o.id;
  // With a console socket the container's stdio is its terminal, and
  // nothing create leaves running (the monitor, the waiting PID 1) may keep
  // create's: containerd's shim reads create's output to its end before it
  // takes the terminal, as runc's create closes it. (The monitor's --debug
  // lines are lost then; create's own still print.)
  if (c.terminal && !o.attach) c.options.stdio = ['ignore', 'ignore', 'ignore'];
  const consoleSocket = o.consoleSocket !== undefined ? resolve(o.consoleSocket) : undefined;
  // runc's two rules: a terminal of a container that outlives create goes
  // somewhere, and a console socket is for a terminal.
  if (c.terminal && consoleSocket === undefined && !o.attach) {
    throw new TsboxError({ step: 'config', errno: 22, path: '--console-socket', detail: 'process.terminal needs a console socket to send the terminal to: create leaves the container running on its own', hint: 'pass --console-socket PATH (a Unix socket you listen on), or set process.terminal to false' });
  }
  if (!c.terminal && consoleSocket !== undefined) {
    throw new TsboxError({ step: 'config', errno: 22, path: '--console-socket', detail: 'there is no terminal to send: process.terminal is false', hint: 'leave out --console-socket, or set process.terminal to true' });
  }
  // A create that fails once the runtime's hooks ran ends as a delete
  // would: its poststop hooks run (warnings only), so what prestart set up
  // (a network, say) is undone, as runc does.
  let hooked = false;
  // The runtime-spec state the hooks read, before the state file has it
  // (the runtime's own hooks also get runc's created and owner).
  const hookState = (status: string, pid: number) => ({
    ociVersion: c.ociVersion,
    id: o.id,
    status,
    pid,
    bundle,
    ...(Object.keys(c.annotations ?? {}).length > 0 ? { annotations: c.annotations } : {}),
  });
  const runtimeState = (status: OciState['status'], pid: number): OciState => ({ ...hookState(status, pid), status, created: new Date().toISOString(), owner: '' });
  const undoHooks = () => {
    if (hooked) runHooks('poststop', c.hooks.poststop, runtimeState('stopped', 0), false, (line) => process.stderr.write(`tsbox: ${line}\n`));
  };
  const container = await launch(c.command, c.options, {
    deferProcess: true,
    // A limit the config sets is never dropped for want of a cgroup.
    explicitLimits: o.rootless === 'false' || c.limited,
    oci: {
      // Not attached, the container's init is the caller's subreaper's child
      // (conmon's, containerd's shim's), as a runc container is.
      plans: (ctx) => {
        const p = c.plans(ctx);
        p.sandbox.reparent = !o.attach;
        // The state the container's own hooks read (the child sets the pid and, for them, the status).
        const state = hookState('creating', 0);
        p.sandbox.createContainerHooks = hookPlan(c.hooks.createContainer, state);
        p.process.startContainerHooks = hookPlan(c.hooks.startContainer, state);
        p.sandbox.runtimeHooks = Boolean(c.hooks.prestart?.length || c.hooks.createRuntime?.length);
        // SCMP_ACT_NOTIFY: the child connects to the agent before pivot_root, and its process sends the listener.
        if (c.seccompAgent) {
          p.sandbox.seccompListener = c.seccompAgent.path;
          p.process.seccompAgent = { metadata: c.seccompAgent.metadata, state: JSON.stringify({ ...state, status: 'created' }), connect: null };
        }
        return p;
      },
      // As the runtime-spec orders them: once the container exists and is in
      // its cgroups, before its pivot_root and its createContainer hooks.
      // Status created, which runtime-tools' hooks_stdin test asks of prestart.
      runtimeHooks: (pid) => {
        hooked = true;
        for (const name of ['prestart', 'createRuntime'] as const) runHooks(name, c.hooks[name], runtimeState('created', pid), true);
      },
      state: { bundle, annotations: c.annotations, ociVersion: c.ociVersion, hooks: c.hooks, oci: true }, cgroupsPath: c.cgroupsPath, systemd: scope, preserveFds: preserved, deviceRules: c.deviceRules },
  }).catch((err: unknown) => {
    undoHooks();
    throw err;
  });
  const ref = new ContainerRef(containerDir(container.id), container.id);
  try {
    // The config as it was at create: exec's defaults, whatever becomes of the bundle.
    writeFileSync(join(containerDir(container.id), 'config.json'), stringifyExact({ process: spec.process, linux: { seccomp: spec.linux?.seccomp ?? null, personality: spec.linux?.personality ?? null }, deviceGuard: c.deviceGuard }), { mode: 0o600 });
    if (c.oomScoreAdj !== null) writeFileSync(`/proc/${container.pid}/oom_score_adj`, String(c.oomScoreAdj));
    if (consoleSocket !== undefined) {
      const fd = container.terminalFd;
      if (fd === null) throw new TsboxError({ step: 'tty', errno: 0, path: consoleSocket, detail: 'the container made no console', hint: null });
      loadNative().binding.sendConsole(consoleSocket, fd, '/dev/ptmx');
    }
    const state = ociState(ref.state());
    if (pidFile !== undefined) writePidFile(pidFile, container.pid);
    return { state, container };
  } catch (err) {
    await ref.remove({ force: true }).catch(() => {});
    undoHooks();
    throw err;
  }
}

/** `start`: runs the process of a created container, then the poststart hooks (a failing one is a warning). */
export async function ociStart(id: string | undefined, warn: (line: string) => void): Promise<void> {
  const { ref, state } = findOci(id, 'start');
  if (state.status !== 'created') {
    const why = state.status === 'stopped' ? 'cannot start a container that has stopped' : state.status === 'running' ? 'cannot start an already running container' : `cannot start a container in the ${state.status} state`;
    throw new TsboxError({ step: 'start', errno: 22, path: id!, detail: why, hint: null });
  }
  // Created from a config without a process: the runtime-spec has start fail.
  if (!savedConfig(state).process) {
    throw new TsboxError({ step: 'start', errno: 22, path: id!, detail: 'its config.json has no process: there is nothing to start', hint: 'the container stays created; `delete --force` removes it' });
  }
  await ref.start();
  runHooks('poststart', state.hooks?.poststart, { ...ociState(state), status: 'running', pid: state.pid }, false, warn);
}

/**
 * `kill`: a signal to the container's PID 1, when it is created or running;
 * with `all`, to every process in its cgroup too (exec'd ones included).
 */
export function ociKill(id: string | undefined, signal: number, all = false): void {
  const { ref, state } = findOci(id, 'kill');
  // A paused container's stored status is running: runc signals it too,
  // and a SIGKILL thaws it (ContainerRef.kill).
  if (state.status !== 'created' && state.status !== 'running') {
    throw new TsboxError({ step: 'kill', errno: 3, path: id!, detail: `container not running (it is ${state.status})`, hint: null });
  }
  // PID 1's first, through its monitor (which goes when PID 1 does); a
  // SIGKILL thaws a paused container after it.
  ref.kill(signal);
  if (!all) return;
  for (const pid of containerPids(state.id) ?? []) {
    try {
      process.kill(pid, signal);
    } catch {
      // It ended meanwhile.
    }
  }
}

/**
 * `delete`: removes a stopped container, then runs the poststop hooks (a
 * failing one is a warning). A created or running one only with `force`,
 * which kills it first; without, it is an error and nothing changes.
 */
export async function ociDelete(id: string | undefined, force: boolean, warn: (line: string) => void): Promise<void> {
  const { ref, state } = findOci(id, 'delete');
  if (state.status !== 'stopped' && !force) {
    throw new TsboxError({ step: 'delete', errno: 16, path: id!, detail: `cannot delete container ${id} that is not stopped: ${state.status}`, hint: '`tsbox delete --force` kills it first' });
  }
  // remove({ force }) thaws a paused one after its SIGKILL.
  await ref.remove({ force: true });
  runHooks('poststop', state.hooks?.poststop, { ...ociState(liveState(state)), status: 'stopped', pid: 0 }, false, warn);
}

/** `pause` (`on`) and `resume`: the container's cgroup frozen, or thawed. */
export function ociPause(id: string | undefined, on: boolean): void {
  const { state } = findOci(id, on ? 'pause' : 'resume');
  const status = ociState(state).status;
  if (status !== (on ? 'running' : 'paused')) {
    throw new TsboxError({ step: on ? 'pause' : 'resume', errno: 22, path: id!, detail: on ? `container not running (it is ${status})` : `container not paused (it is ${status})`, hint: null });
  }
  setPaused(state.id, on);
}

/**
 * `ps ID`: the container's processes (every one in its cgroup), as host
 * pids in JSON, or ps(1)'s table for them (`psArgs`, default -ef) as runc
 * prints it.
 */
export function ociProcesses(id: string | undefined, format: 'table' | 'json', psArgs: string[]): string {
  const { state } = findOci(id, 'ps');
  if (state.status !== 'running' && state.status !== 'created') throw new TsboxError({ step: 'ps', errno: 3, path: id!, detail: `container not running (it is ${state.status})`, hint: null });
  const pids = new Set(containerPids(state.id) ?? [state.pid]);
  if (format === 'json') return `${JSON.stringify([...pids])}\n`;
  const table = execFileSync('ps', psArgs.length > 0 ? psArgs : ['-ef'], { encoding: 'utf8' }).split('\n');
  const column = table[0]!.trim().split(/\s+/).indexOf('PID');
  if (column < 0) throw new TsboxError({ step: 'ps', errno: 22, path: 'ps', detail: 'ps(1) printed no PID column', hint: 'keep the PID column in the ps options' });
  return `${[table[0], ...table.slice(1).filter((l) => pids.has(Number(l.trim().split(/\s+/)[column])))].join('\n')}\n`;
}

/** The limits runc's update flags set, by tsbox's name (the flag is its kebab-case). */
export const UPDATE_LIMITS = ['memory', 'memoryReservation', 'memorySwap', 'cpuShares', 'cpuQuota', 'cpuPeriod', 'cpusetCpus', 'cpusetMems', 'pidsLimit', 'blkioWeight'] as const;
const NUMERIC = new Set(['cpuShares', 'cpuQuota', 'cpuPeriod', 'pidsLimit', 'blkioWeight']);

/**
 * `update`: new limits for a container that has not stopped, from an OCI
 * `linux.resources` object (--resources FILE, or - for stdin) and runc's
 * flags, which win. Only what is given changes.
 */
export function ociUpdate(id: string | undefined, resourcesFile: string | undefined, flags: Partial<Record<(typeof UPDATE_LIMITS)[number], string>>): void {
  const { state } = findOci(id, 'update');
  if (state.status === 'stopped') throw new TsboxError({ step: 'update', errno: 3, path: id!, detail: 'container not running (it has stopped)', hint: null });
  const problems: SpecProblem[] = [];
  const refuse = (path: string, message: string) => problems.push({ path, message });
  let limits: Record<string, unknown> = {};
  let paths: Record<string, string> = {};
  const file = resourcesFile === '-' ? '(stdin)' : resourcesFile !== undefined ? resolve(resourcesFile) : 'update';
  if (resourcesFile !== undefined) {
    let raw: unknown;
    try {
      raw = parseJsonExact(readFileSync(resourcesFile === '-' ? 0 : file, 'utf8'));
    } catch (err) {
      throw new TsboxError({ step: 'config', errno: 0, path: file, detail: `cannot read the resources (${(err as Error).message})`, hint: 'a JSON object as config.json\'s linux.resources' });
    }
    const parsed = ociResourcesSchema.safeParse(raw);
    if (!parsed.success) throw specError(file, parsed.error.issues.map((i) => ({ path: jsonPath(['resources', ...i.path]), message: i.message })));
    if (parsed.data.devices?.length) refuse('resources.devices', 'device rules are set at create, and tsbox does not change them while the container runs');
    ({ options: limits, paths } = ociLimits(parsed.data, refuse, 'resources'));
    // What a running container's cgroup does not take again (huge pages, the
    // v1-only memory files, net_cls, unified, per-device I/O): refused, never dropped.
    for (const key of Object.keys(limits)) {
      if (!(UPDATE_LIMITS as readonly string[]).includes(key)) refuse(paths[key] ?? `resources.${key}`, 'is set at create; tsbox does not change it while the container runs');
    }
    // checkBeforeUpdate: a memory limit below what the container uses now is refused, not set.
    const limit = parsed.data.memory?.limit;
    if (parsed.data.memory?.checkBeforeUpdate && limit != null && Number(limit) > 0) {
      const usage = containerStats(state.id)?.memory.current ?? null;
      if (usage !== null && usage > Number(limit)) refuse('resources.memory.limit', `${String(limit)} is below the memory the container uses now (${usage} bytes), and checkBeforeUpdate asks for that to be refused`);
    }
  }
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const cli = `--${kebab(key)}`;
    if (NUMERIC.has(key) && !/^-?\d+$/.test(value)) {
      refuse(cli, `"${value}" is not a whole number`);
      continue;
    }
    limits[key] = NUMERIC.has(key) ? Number(value) : /^\d+$/.test(value) ? Number(value) : value;
    paths[key] = cli;
  }
  if (problems.length > 0) throw specError(file, problems);
  if (Object.keys(limits).length === 0) throw new TsboxError({ step: 'config', errno: 22, path: 'update', detail: 'no limit given', hint: 'give --resources FILE or flags such as --memory 64m, --pids-limit 100' });
  try {
    updateCgroup(state.id, limits);
  } catch (err) {
    const issues = (err as { issues?: SpecProblem[] }).issues;
    if (err instanceof TsboxError && issues) throw specError(file, issues.map((i) => ({ path: paths[i.path.replace(/^limits\./, '').split(/[.[]/)[0]!] ?? i.path, message: i.message })));
    throw err;
  }
}

/** An event of runc's `events`: the container's usage, or an OOM kill in it. */
export interface OciEvent {
  type: 'stats' | 'oom';
  id: string;
  data?: Record<string, unknown>;
}

/** The `stats` event of the container named `id`, in runc's shape (times in ns). */
export function ociStats(id: string | undefined): OciEvent & { oomKills: number | null } {
  const { state } = findOci(id, 'events');
  if (state.status === 'stopped') throw new TsboxError({ step: 'events', errno: 3, path: id!, detail: `container with id ${id} is not running`, hint: null });
  const s = containerStats(state.id);
  if (s === null) throw new TsboxError({ step: 'events', errno: 2, path: id!, detail: 'the container has no cgroup to read its usage from', hint: null });
  const ns = (us: number | null) => (us === null ? undefined : us * 1000);
  const data = {
    cpu: {
      usage: { total: ns(s.cpu.usageUsec), user: ns(s.cpu.userUsec), kernel: ns(s.cpu.systemUsec) },
      throttling: { periods: s.cpu.periods ?? undefined, throttledPeriods: s.cpu.throttledPeriods ?? undefined, throttledTime: ns(s.cpu.throttledUsec) },
    },
    memory: { usage: { usage: s.memory.current ?? undefined, max: s.memory.peak ?? undefined, limit: s.limits.memory ?? undefined } },
    pids: { current: s.pids.current ?? undefined, limit: s.limits.pids ?? undefined },
  };
  return { type: 'stats', id: id!, data, oomKills: s.memory.oomKills };
}

/**
 * runc's `events` without --stats: the stats every `intervalMs`, and an
 * `oom` event when the kernel's OOM killer killed in the container, until
 * it stops.
 */
export async function ociEvents(id: string | undefined, intervalMs: number, emit: (e: OciEvent) => void): Promise<void> {
  let ooms: number | null = null;
  for (;;) {
    let e;
    try {
      e = ociStats(id);
    } catch (err) {
      // Its end ends the stream.
      if (err instanceof TsboxError && (err.errno === 3 || err.errno === 2) && ooms !== null) return;
      throw err;
    }
    const { oomKills, ...event } = e;
    if (ooms !== null && oomKills !== null && oomKills > ooms) emit({ type: 'oom', id: id! });
    ooms = oomKills ?? 0;
    emit(event);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** What create kept of the container's config (its state directory's config.json). */
export interface SavedConfig {
  /** Absent when the config had none: the container cannot be started. */
  process?: Record<string, unknown>;
  linux: { seccomp: Record<string, unknown> | null; personality?: { domain: 'LINUX' | 'LINUX32' } | null };
  /** The deny-all device rule is held by nodev: no process with CAP_SYS_ADMIN may run in it. */
  deviceGuard?: boolean;
}

export function savedConfig(state: ContainerState): SavedConfig {
  return parseJsonExact(readFileSync(join(containerDir(state.id), 'config.json'), 'utf8')) as SavedConfig;
}

/** The containers with state, as `list` shows them. */
export function ociList(): OciState[] {
  return listStates()
    .filter((c) => c.state.oci === true)
    .map((c) => ociState(c.state));
}

/** Hooks the container's first process runs (createContainer, startContainer), with the state they read. */
function hookPlan(list: readonly OciHook[] | undefined, state: Record<string, unknown>): Hooks | null {
  if (!list || list.length === 0) return null;
  return { hooks: list.map((h) => ({ path: h.path, args: h.args ?? [], env: h.env ?? [], timeout: h.timeout ?? null })), state: JSON.stringify(state) };
}

/**
 * Runs hooks in order, each with the state on its stdin and its output
 * captured, killed at its timeout. With `fatal` the first failure throws
 * (create's hooks); otherwise it is a warning and the rest still run.
 */
export function runHooks(name: HookName, hooks: readonly OciHook[] | undefined, state: OciState, fatal: boolean, warn?: (line: string) => void): void {
  (hooks ?? []).forEach((h, i) => {
    // KEY=VALUE; a bare KEY is set empty.
    const env = Object.fromEntries((h.env ?? []).map((e) => (e.includes('=') ? [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] : [e, ''])));
    const args = h.args && h.args.length > 0 ? h.args : [h.path];
    const r = spawnSync(h.path, args.slice(1), {
      argv0: args[0],
      env,
      input: JSON.stringify(state),
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: h.timeout ? h.timeout * 1000 : undefined,
      killSignal: 'SIGKILL',
      maxBuffer: 1 << 20,
    });
    let why: string | null = null;
    const code = r.error ? (r.error as NodeJS.ErrnoException).code : undefined;
    if (code === 'ETIMEDOUT') why = `timed out after ${h.timeout} s`;
    // EPIPE: it ended without reading the state, which it need not read; its status tells.
    else if (r.error && code !== 'EPIPE') why = r.error.message;
    else if (r.status !== 0) why = r.signal ? `ended by ${r.signal}` : `exited with status ${r.status}`;
    if (why === null) return;
    const out = `${r.stderr?.toString() ?? ''}${r.stdout?.toString() ?? ''}`.trim().split('\n').slice(-1)[0];
    const err = new TsboxError({ step: 'hook', errno: 0, path: `hooks.${name}[${i}]`, detail: `${h.path} ${why}${out ? `: ${out}` : ''}`, hint: null });
    if (fatal) throw err;
    warn?.(`warning: ${err.toLine()}`);
  });
}

/** The container's pid, in the host's pid namespace, as decimal digits without a newline, renamed into place. */
export function writePidFile(path: string, pid: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}`);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, String(pid));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new TsboxError({ step: 'pid_file', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0), path, detail: `cannot write the pid file (${(err as Error).message})`, hint: null });
  }
}

/** What carries out a bundle's device rules on this host (plan.ts, DeviceControl). */
function deviceControl(): DeviceControl {
  // Root of a user namespace an ordinary user made (rootless podman) has neither.
  if (process.getuid?.() !== 0 || inUserNamespace()) return 'rootless';
  try {
    const src = readProcSource();
    if (hasV1Devices(src)) return 'cgroup';
    return detectCgroupMode(src) === 'v2' ? 'ebpf' : 'none';
  } catch {
    // No cgroup hierarchy: the launch reports it.
    return 'none';
  }
}
