/**
 * The systemd cgroup driver (runc's `--systemd-cgroup`): on a host whose
 * PID 1 is systemd, the container's cgroup is a transient scope unit that
 * systemd makes, `<prefix>-<name>.scope` in `<slice>`, from the OCI
 * `cgroupsPath` `slice:prefix:name`, so that systemd knows it (systemctl
 * status, its slice's accounting) and never takes it for a stray cgroup.
 *
 * - Asked of systemd over D-Bus with `busctl` (systemd's own client, on
 *   every host systemd runs): StartTransientUnit with Delegate=yes, the
 *   accounting of every controller tsbox writes, the main limits as unit
 *   properties (so that a daemon-reload does not reset them to the unit's),
 *   and the pid of the launch's helper, which clones the container into the
 *   scope's cgroup and is then moved back where it came from.
 * - The limits are then written as for any cgroup (driver.ts), the scope's
 *   directory being the container's leaf; Delegate=yes leaves its contents to
 *   tsbox.
 * - Teardown removes the cgroup as usual and stops the unit (systemd also
 *   drops a scope by itself once it is empty).
 *
 * Pure cgroup v2 and root only: a v1 or hybrid host's scopes span several
 * hierarchies systemd manages by itself, and an ordinary user's would be its
 * user manager's (`--user`); both are refused with why.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { posix } from 'node:path';

import { TsboxError } from '../errors.js';
import { sleepSync } from '../sleep.js';
import { cpuSharesToWeight, DEFAULT_CPU_PERIOD, parseLimits, type CgroupLimitsInput } from './limits.js';

export interface SystemdScope {
  /** The slice it goes in, e.g. `system.slice` or `machine-tenant.slice`. */
  slice: string;
  /** The unit: `<prefix>-<name>.scope`. */
  unit: string;
  /** Its cgroup, as a cgroup path (`/system.slice/tsbox-c1.scope`). */
  path: string;
}

/** How long systemd has to start a scope (its job moves the helper in). */
const START_WAIT_MS = 10_000;

const UNIT_CHARS = /^[A-Za-z0-9:_.\\-]+$/;

/** Whether `name` is a scope unit's name as the driver writes one (what alone goes to systemd on teardown). */
export function isScopeName(name: string): boolean {
  return name.endsWith('.scope') && UNIT_CHARS.test(name);
}

function refuse(path: string, detail: string, hint: string): never {
  throw new TsboxError({ step: 'config', errno: 22, path, detail, hint });
}

/** A slice's cgroup path: `a-b.slice` is `/a.slice/a-b.slice`, `-.slice` the root (systemd's rule). */
export function expandSlice(slice: string): string {
  if (slice === '-.slice') return '/';
  if (!slice.endsWith('.slice') || slice.includes('/') || !UNIT_CHARS.test(slice)) refuse('linux.cgroupsPath', `"${slice}" is not a systemd slice name`, 'name a slice such as system.slice or machine-tenant.slice');
  const stem = slice.slice(0, -'.slice'.length);
  if (stem === '' || stem.startsWith('-') || stem.endsWith('-') || stem.includes('--')) refuse('linux.cgroupsPath', `"${slice}" is not a valid slice name: its dashes must separate non-empty parts`, 'name a slice such as system.slice or machine-tenant.slice');
  const parts = stem.split('-');
  return `/${parts.map((_, i) => `${parts.slice(0, i + 1).join('-')}.slice`).join('/')}`;
}

/**
 * `slice:prefix:name` as runc reads it: an empty slice is `system.slice`,
 * the unit `<prefix>-<name>.scope` (or `<name>.scope` with no prefix). A
 * name that is itself a slice (runc's way to give the container a slice)
 * is refused: tsbox puts a container in a scope.
 */
export function systemdScope(cgroupsPath: string | undefined, id: string): SystemdScope {
  const given = cgroupsPath || `:tsbox:${id}`;
  const parts = given.split(':');
  if (parts.length !== 3) refuse('linux.cgroupsPath', `"${given}" is not systemd's slice:prefix:name, which --systemd-cgroup needs`, 'give it as slice:prefix:name, e.g. system.slice:tsbox:c1 (or leave it out: :tsbox:<id>)');
  const [sliceGiven, prefix, name] = parts as [string, string, string];
  const slice = sliceGiven || 'system.slice';
  if (name === '' || !UNIT_CHARS.test(name) || (prefix !== '' && !UNIT_CHARS.test(prefix))) refuse('linux.cgroupsPath', `"${given}": the prefix and name make a unit name, and may hold only letters, digits and : _ . \\ -`, 'give a name such as c1 or the container id');
  if (name.endsWith('.slice')) refuse('linux.cgroupsPath', `"${given}" names a slice for the container; tsbox's systemd driver gives a container a scope`, 'give a name that is not a .slice, e.g. system.slice:tsbox:c1');
  const unit = `${prefix ? `${prefix}-` : ''}${name}.scope`;
  const parent = expandSlice(slice);
  return { slice, unit, path: posix.join(parent, unit) };
}

/** Why the systemd driver cannot run here, or null when it can (systemd is PID 1, pure v2, root). */
export function systemdUnavailable(v2: boolean): string | null {
  if (!existsSync('/run/systemd/system')) return "systemd is not PID 1 on this machine, so there is no systemd to make the container's cgroup";
  if (process.getuid?.() !== 0) return "an ordinary user's container would need its systemd user manager, which tsbox does not ask yet";
  if (!v2) return "this host's cgroups are v1 or hybrid, where systemd's scopes span hierarchies systemd manages by itself; tsbox's systemd driver needs pure cgroup v2";
  return null;
}

/** A systemd D-Bus call with busctl; its stdout, or throws with systemd's message. */
function busctl(method: string, signature: string, args: string[], what: string): string {
  const r = spawnSync('busctl', ['call', '--system', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager', method, signature, ...args], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.stderr.trim() || `busctl exited with ${r.status}`;
    const missing = r.error !== undefined && 'code' in r.error && r.error.code === 'ENOENT';
    throw new TsboxError({
      step: 'cgroup',
      errno: missing ? 2 : 5,
      path: method,
      detail: `systemd refused to ${what}: ${why}`,
      hint: missing ? 'busctl (systemd) is needed for --systemd-cgroup' : 'systemctl status and journalctl say more; or leave out --systemd-cgroup (podman: --cgroup-manager cgroupfs)',
    });
  }
  return r.stdout;
}

/** The limits also given to systemd as unit properties (systemd writes these files itself when it realizes the unit again). */
export interface ScopeLimits {
  memory?: number | undefined;
  memorySwap?: number | undefined;
  pids?: number | undefined;
  cpuWeight?: number | undefined;
  cpuQuotaPerSecUSec?: number | undefined;
}

/** The container's limits (validated) as systemd's unit properties. */
export function scopeLimits(input: CgroupLimitsInput): ScopeLimits {
  const l = parseLimits(input);
  const out: ScopeLimits = {};
  if (l.memory !== undefined) out.memory = l.memory;
  // systemd's MemorySwapMax is swap alone; tsbox's memorySwap is memory plus swap.
  if (l.memory !== undefined && l.memorySwap !== undefined && l.memorySwap !== -1) out.memorySwap = l.memorySwap - l.memory;
  if (l.pidsLimit !== -1) out.pids = l.pidsLimit;
  if (l.cpuShares !== undefined) out.cpuWeight = cpuSharesToWeight(l.cpuShares);
  if (l.cpus !== undefined) out.cpuQuotaPerSecUSec = Math.round(l.cpus * 1_000_000);
  else if (l.cpuQuota !== undefined && l.cpuQuota !== -1) out.cpuQuotaPerSecUSec = Math.round((l.cpuQuota * 1_000_000) / (l.cpuPeriod ?? DEFAULT_CPU_PERIOD));
  return out;
}

function properties(scope: SystemdScope, id: string, pid: number, limits: ScopeLimits): string[][] {
  const props: string[][] = [
    ['Description', 's', `tsbox container ${id}`],
    ['Slice', 's', scope.slice],
    ['Delegate', 'b', 'true'],
    ['DefaultDependencies', 'b', 'false'],
    ['PIDs', 'au', '1', String(pid)],
    ['CPUAccounting', 'b', 'true'],
    ['MemoryAccounting', 'b', 'true'],
    ['TasksAccounting', 'b', 'true'],
    ['IOAccounting', 'b', 'true'],
  ];
  if (limits.memory !== undefined) props.push(['MemoryMax', 't', String(limits.memory)]);
  if (limits.memorySwap !== undefined) props.push(['MemorySwapMax', 't', String(limits.memorySwap)]);
  if (limits.pids !== undefined) props.push(['TasksMax', 't', String(limits.pids)]);
  if (limits.cpuWeight !== undefined) props.push(['CPUWeight', 't', String(limits.cpuWeight)]);
  if (limits.cpuQuotaPerSecUSec !== undefined) props.push(['CPUQuotaPerSecUSec', 't', String(limits.cpuQuotaPerSecUSec)]);
  return props;
}

/** The cgroup path `pid` is in (cgroup v2's `0::` line), or null when it is gone. */
function cgroupOf(pid: number): string | null {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line === undefined ? null : line.slice(3);
  } catch {
    return null;
  }
}

/**
 * Starts the scope with `pid` (the launch's helper) in it, and returns once
 * systemd has moved it there: its cgroup then exists, holding the helper.
 */
export function startScope(scope: SystemdScope, id: string, pid: number, limits: ScopeLimits, trace?: (line: string) => void): void {
  const props = properties(scope, id, pid, limits);
  busctl('StartTransientUnit', 'ssa(sv)a(sa(sv))', [scope.unit, 'fail', String(props.length), ...props.flat(), '0'], `start the scope ${scope.unit}`);
  const deadline = Date.now() + START_WAIT_MS;
  for (let delay = 1; cgroupOf(pid) !== scope.path; delay = Math.min(delay * 2, 50)) {
    if (Date.now() >= deadline) {
      try {
        stopScope(scope.unit);
      } catch {
        // The timeout is what to report; systemd drops the scope once its helper is gone.
      }
      throw new TsboxError({ step: 'cgroup', errno: 110, path: scope.unit, detail: `systemd did not start the scope within ${START_WAIT_MS / 1000} s (the helper is in ${cgroupOf(pid) ?? 'no cgroup'})`, hint: `systemctl status ${scope.unit} says why` });
    }
    sleepSync(delay);
  }
  trace?.(`cgroup: systemd started ${scope.unit} in ${scope.slice} (${scope.path})`);
}

const INFINITY = '18446744073709551615';

/**
 * Gives systemd the limits now in the scope's cgroup `dir` as its unit's
 * properties (`update`), so that systemd, when it realizes the unit again
 * (a daemon-reload), writes what the container has rather than what it had.
 */
export function syncScope(unit: string, dir: string, read: (path: string) => string | null): void {
  const file = (name: string) => read(posix.join(dir, name))?.trim() ?? null;
  const amount = (v: string) => (v === 'max' ? INFINITY : v);
  const props: string[][] = [];
  const memory = file('memory.max');
  if (memory !== null) props.push(['MemoryMax', 't', amount(memory)]);
  const swap = file('memory.swap.max');
  if (swap !== null) props.push(['MemorySwapMax', 't', amount(swap)]);
  const pids = file('pids.max');
  if (pids !== null) props.push(['TasksMax', 't', amount(pids)]);
  const weight = file('cpu.weight');
  if (weight !== null) props.push(['CPUWeight', 't', weight]);
  const max = file('cpu.max')?.split(' ');
  if (max?.length === 2) props.push(['CPUQuotaPerSecUSec', 't', max[0] === 'max' ? INFINITY : String(Math.round((Number(max[0]) * 1_000_000) / Number(max[1])))]);
  if (props.length === 0) return;
  busctl('SetUnitProperties', 'sba(sv)', [unit, 'true', String(props.length), ...props.flat()], `set the limits of ${unit}`);
}

/** Stops the scope; one systemd no longer has (it drops an empty one by itself) is fine. */
export function stopScope(unit: string): void {
  try {
    busctl('StopUnit', 'ss', [unit, 'replace'], `stop ${unit}`);
  } catch (err) {
    if (!/not loaded|NoSuchUnit/i.test(err instanceof Error ? err.message : '')) throw err;
  }
}

/** Moves `pid` (the helper, once it has cloned the container into the scope) back to the cgroup `path` it came from. */
export function moveBack(pid: number, path: string, trace?: (line: string) => void): void {
  const procs = posix.join('/sys/fs/cgroup', path, 'cgroup.procs');
  try {
    writeFileSync(procs, String(pid));
  } catch (err) {
    // A helper that has exited meanwhile (a detached container's, once its monitor is forked) needs no move.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return;
    throw new TsboxError({ step: 'cgroup', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 5), path: procs, detail: "move tsbox's helper out of the container's scope, back to its own cgroup", hint: null }, { cause: err });
  }
  trace?.(`cgroup: helper ${pid} back in ${path}`);
}
