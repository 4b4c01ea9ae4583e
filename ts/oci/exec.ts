/**
 * runc's `exec` for a container of `tsbox create`: a process from
 * `--process FILE`, or the process of its config (as it was at create) with
 * the flags' changes, run with the container's seccomp profile by its
 * monitor, as `tsbox exec` runs one (ts/runtime/container.ts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { isPaused } from '../cgroups/index.js';
import { parseRunInput } from '../config/schema.js';
import { TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { execPlan, type Container } from '../runtime/container.js';
import { containerDir } from '../runtime/state.js';
import { deviceGuardProblems, ociProcessPlan, processProblems } from './plan.js';
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
 * started. With `detach` its monitor keeps it after this program is gone.
 * The pid file gets its pid in the host's pid namespace.
 */
export async function ociExec(id: string | undefined, r: ExecRequest): Promise<Container> {
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
  const o = parseRunInput(plan.argv, { stdio: 'inherit', init: false, tty: terminal }).options;
  // Detached, the process is the child of the monitor's parent, as runc's:
  // conmon or a containerd shim (subreapers) wait for it and have its status.
  const c = await execPlan(state.id, join(dir, 'control.sock'), o, plan, { detach: r.detach, reparent: r.detach });
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
    // A detached process would outlive the failed exec: it goes too.
    c.kill('SIGKILL');
    throw err instanceof TsboxError ? err : new TsboxError({ step: 'exec', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0), path: id!, detail: `the process started but could not be handed over (${(err as Error).message}); it was killed`, hint: null }, { cause: err });
  }
  return c;
}
