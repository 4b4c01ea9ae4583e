/**
 * runc's `exec` for a container of `tsbox create`: a process from
 * `--process FILE`, or the process of its config (as it was at create) with
 * the flags' changes, run with the container's seccomp profile by its
 * monitor, as `tsbox exec` runs one (ts/runtime/container.ts).
 */
import { closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { isPaused } from '../cgroups/index.js';
import { parseRunInput } from '../config/schema.js';
import { TsboxError } from '../errors.js';
import type { ProcessPlan } from '../generated/wire.js';
import { loadNative, type NativeChannel, type NativeHelper } from '../native.js';
import { execPlan, keepAlive, type Container } from '../runtime/container.js';
import { recv, spawnFailure, toHelper, toMonitor } from '../runtime/protocol.js';
import { containerDir } from '../runtime/state.js';
import { deviceGuardProblems, notifies, ociProcessPlan, processProblems } from './plan.js';
import { findOci, ociState, savedConfig, writePidFile } from './runtime.js';
import { jsonPath, ociProcessSchema, parseJsonExact, specError, type SpecProblem } from './spec.js';

export interface ExecRequest {
  /** An OCI `process` (JSON) to run as it is: --process FILE. */
  processFile?: string | undefined;
  /** The command; with a process file, it replaces the file's args. */
  args: string[];
  cwd?: string | undefined;
  /** KEY=VALUE, over the container's. */
  env: string[];
  /** UID[:GID], numeric. */
  user?: string | undefined;
  additionalGids: string[];
  /** More capabilities: bounding, effective and permitted (ambient too when inheritable has it). */
  caps: string[];
  noNewPrivs: boolean;
  tty: boolean;
  consoleSocket?: string | undefined;
  pidFile?: string | undefined;
  detach: boolean;
  preserveFds: number;
  /** Exec into a paused container too (runc's --ignore-paused). */
  ignorePaused?: boolean | undefined;
}

type Json = Record<string, unknown>;

/** The config's process with the flags' changes, as runc makes it. */
function fromFlags(saved: Json, r: ExecRequest): Json {
  const p = structuredClone(saved);
  if (r.args.length === 0) throw new TsboxError({ step: 'config', errno: 22, path: 'exec', detail: 'needs a command, or --process FILE', hint: null });
  p.args = r.args;
  if (r.cwd !== undefined) p.cwd = r.cwd;
  if (r.env.length > 0) {
    const keys = new Set(r.env.map((e) => e.split('=')[0]));
    p.env = [...((p.env as string[] | undefined) ?? []).filter((e) => !keys.has(e.split('=')[0])), ...r.env];
  }
  const user = { ...(p.user as Json) };
  if (r.user !== undefined) {
    const m = /^(\d+)(?::(\d+))?$/.exec(r.user);
    if (!m) throw new TsboxError({ step: 'config', errno: 22, path: '--user', detail: `"${r.user}" is not UID[:GID] (numbers)`, hint: null });
    user.uid = Number(m[1]);
    if (m[2] !== undefined) user.gid = Number(m[2]);
  }
  if (r.additionalGids.length > 0) user.additionalGids = r.additionalGids.map(Number);
  p.user = user;
  if (r.caps.length > 0) {
    const c = { ...((p.capabilities as Record<string, string[] | undefined> | undefined) ?? {}) };
    for (const set of ['bounding', 'effective', 'permitted']) c[set] = [...new Set([...(c[set] ?? []), ...r.caps])];
    const inheritable = r.caps.filter((cap) => c.inheritable?.includes(cap));
    if (inheritable.length > 0) c.ambient = [...new Set([...(c.ambient ?? []), ...inheritable])];
    p.capabilities = c;
  }
  if (r.noNewPrivs) p.noNewPrivileges = true;
  p.terminal = r.tty;
  return p;
}

/**
 * Runs the process in the running container; resolves once it has
 * started, with its handle, or null with `detach` (then it descends from
 * this program, as a runc exec'd process: see execDetached). The pid file
 * gets its pid in the host's pid namespace.
 */
export async function ociExec(id: string | undefined, r: ExecRequest): Promise<Container | null> {
  const { state } = findOci(id, 'exec');
  if (state.status !== 'running' || (!r.ignorePaused && isPaused(state.id))) {
    throw new TsboxError({ step: 'join', errno: 3, path: id!, detail: `cannot exec in a container that is ${ociState(state).status}`, hint: null });
  }
  if (r.preserveFds) throw new TsboxError({ step: 'config', errno: 22, path: '--preserve-fds', detail: 'passing file descriptors into the container is not supported by tsbox yet', hint: null });
  const dir = containerDir(state.id);
  const saved = savedConfig(state);
  let file = join(dir, 'config.json');
  let raw: unknown;
  if (r.processFile !== undefined) {
    file = resolve(r.processFile);
    try {
      raw = parseJsonExact(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new TsboxError({ step: 'config', errno: 0, path: file, detail: `cannot read the process (${(err as Error).message})`, hint: 'a JSON file holding an OCI process object' });
    }
  } else {
    raw = fromFlags(saved.process ?? {}, r);
  }
  const parsed = ociProcessSchema.safeParse(raw);
  const problems: SpecProblem[] = parsed.success
    ? []
    : parsed.error.issues.map((i) => ({ path: jsonPath(['process', ...i.path]), message: i.message }));
  if (parsed.success) {
    processProblems(parsed.data, 'process', (path, message) => problems.push({ path, message }));
    // As the container's first process: nothing that could undo its device rule.
    if (saved.deviceGuard) deviceGuardProblems(parsed.data, 'process', (path, message) => problems.push({ path, message }));
  }
  if (!parsed.success || problems.length > 0) throw specError(file, problems);
  const proc = parsed.data;
  if (r.processFile !== undefined && r.args.length > 0) proc.args = r.args;
  const terminal = proc.terminal === true;
  if (terminal && r.consoleSocket === undefined && r.detach) {
    throw new TsboxError({ step: 'config', errno: 22, path: '--console-socket', detail: 'a terminal of a detached process needs a console socket to send it to', hint: 'pass --console-socket PATH, or leave out --tty' });
  }
  if (!terminal && r.consoleSocket !== undefined) {
    throw new TsboxError({ step: 'config', errno: 22, path: '--console-socket', detail: 'there is no terminal to send: the process has none', hint: 'add --tty, or leave out --console-socket' });
  }
  const native = loadNative();
  const plan = ociProcessPlan(proc, saved.linux.seccomp, native.binding, false, saved.linux.personality?.domain);
  // Its filter notifies the container's seccomp agent: its own listener goes
  // there too, as runc's exec'd processes' do (the process connects before it
  // joins the mount namespace, where the socket's path is the host's).
  const seccomp = saved.linux.seccomp as { listenerPath?: unknown; listenerMetadata?: unknown } | null;
  if (notifies(saved.linux.seccomp) && typeof seccomp?.listenerPath === 'string') {
    plan.seccompAgent = {
      metadata: typeof seccomp.listenerMetadata === 'string' ? seccomp.listenerMetadata : '',
      state: JSON.stringify({ ...ociState(state), status: 'running' }),
      connect: seccomp.listenerPath,
    };
  }
  const control = join(dir, 'control.sock');
  if (r.detach) {
    const pid = await execDetached(control, plan, terminal, id!);
    try {
      if (r.consoleSocket !== undefined) {
        native.binding.sendConsole(resolve(r.consoleSocket), pid.terminalFd!, '/dev/ptmx');
        closeSync(pid.terminalFd!);
      }
      if (proc.oomScoreAdj != null) writeFileSync(`/proc/${pid.pid}/oom_score_adj`, String(proc.oomScoreAdj));
      if (r.pidFile !== undefined) writePidFile(resolve(r.pidFile), pid.pid);
    } catch (err) {
      // It would outlive the failed exec: it goes too.
      try {
        process.kill(pid.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
      throw handOverFailed(err, id!);
    }
    return null;
  }
  const o = parseRunInput(plan.argv, { stdio: 'inherit', init: false, tty: terminal }).options;
  const c = await execPlan(state.id, control, o, plan);
  try {
    if (r.consoleSocket !== undefined) {
      native.binding.sendConsole(resolve(r.consoleSocket), c.terminalFd!, '/dev/ptmx');
      // The terminal is the socket's owner's now: our copy of the master goes,
      // or it would read what the process prints before they do.
      c.stdout?.destroy();
    }
    // As the container's first process has it (runc sets it before exec;
    // here right after, before anything waits on the process).
    if (proc.oomScoreAdj != null) writeFileSync(`/proc/${c.pid}/oom_score_adj`, String(proc.oomScoreAdj));
    if (r.pidFile !== undefined) writePidFile(resolve(r.pidFile), c.pid);
  } catch (err) {
    c.kill('SIGKILL');
    throw handOverFailed(err, id!);
  }
  return c;
}

/** A process that started but whose pid file, oom score or console could not be handed over (it was killed). */
function handOverFailed(err: unknown, id: string): TsboxError {
  if (err instanceof TsboxError) return err;
  const detail = `the process started but could not be handed over (${(err as Error).message}); it was killed`;
  return new TsboxError({ step: 'exec', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0), path: id, detail, hint: null }, { cause: err });
}

/**
 * `exec --detach`: the process is started by a helper of this process's
 * (`tsbox-init --exec`), from the container's namespaces and cgroup the
 * monitor hands over as descriptors, so that it descends from this process
 * and, once this process is gone, from its caller's subreaper (conmon,
 * containerd's shim), which waits for it and has its exit status, as a runc
 * exec'd process. Its stdio is this process's; with a terminal, the master
 * comes back. Resolves once it has exec'd.
 */
async function execDetached(control: string, plan: ProcessPlan, terminal: boolean, id: string): Promise<{ pid: number; terminalFd: number | null }> {
  const native = loadNative();
  const taken: number[] = [];
  let monitor: NativeChannel | null = null;
  let helper: NativeHelper | null = null;
  const ch = new native.binding.Channel();
  let terminalFd: number | null = null;
  try {
    try {
      monitor = native.binding.Channel.connect(control);
    } catch (err) {
      throw new TsboxError({ step: 'join', errno: 3, path: id, detail: `reach the container's monitor: ${(err as Error).message}`, hint: 'the container must still be running' }, { cause: err });
    }
    await toMonitor.namespaces(monitor);
    const ns = await recv(monitor);
    if (ns === null || ns.type === 'failed') {
      if (ns === null) throw new TsboxError({ step: 'join', errno: 0, path: id, detail: "the container's monitor closed the connection", hint: 'the container must still be running' });
      throw new TsboxError(ns);
    }
    if (ns.type !== 'namespaces') throw new TsboxError({ step: 'join', errno: 71, path: id, detail: `unexpected ${ns.type} from the container's monitor`, hint: null });
    for (let i = 0; i < ns.namespaces.length + (ns.cgroupDir ? 1 : 0); i++) {
      const fd = monitor.takeFd();
      if (fd < 0) throw new TsboxError({ step: 'join', errno: 71, path: id, detail: "the container's monitor sent fewer descriptors than namespaces", hint: null });
      taken.push(fd);
    }
    try {
      helper = native.binding.spawnHelper(native.initPath, ['ignore', 'ignore', 'inherit'], ch.childFd, undefined, true);
      ch.closeChild();
      // The spawn runs on the addon's thread: its error, if it failed, before the process goes to it.
      helper.started();
    } catch (err) {
      throw spawnFailure(native.initPath, err);
    }
    // The process's stdio is this process's, as runc's (conmon's pipes or pty).
    const stdio = terminal ? [] : [0, 1, 2];
    await toHelper.execInto(ch, { process: plan, stdio: stdio.length, namespaces: ns.namespaces, procs: ns.procs, cgroupDir: ns.cgroupDir }, [...stdio, ...taken]);
    for (;;) {
      const msg = await recv(ch);
      if (msg === null) throw new TsboxError({ step: 'join', errno: 0, path: id, detail: 'tsbox-init --exec ended without reporting the process', hint: null });
      if (msg.type === 'pty') {
        terminalFd = ch.takeFd();
        continue;
      }
      if (msg.type === 'failed') throw new TsboxError(msg);
      if (msg.type === 'started') return { pid: msg.pid, terminalFd };
      throw new TsboxError({ step: 'join', errno: 71, path: id, detail: `unexpected ${msg.type} from tsbox-init --exec`, hint: null });
    }
  } catch (err) {
    // A terminal that came before the failure is nobody's now.
    if (terminalFd !== null) closeSync(terminalFd);
    throw err;
  } finally {
    for (const fd of taken) closeSync(fd);
    monitor?.close();
    ch.close();
    // It exits once the process has exec'd (or failed): reaped here, so only
    // the process is left. The wait is weak: the keep-alive holds Node for it.
    if (helper) {
      const keep = keepAlive();
      await new Promise<void>((res) => helper!.waitWeak(() => res()));
      clearInterval(keep);
    }
  }
}
