/**
 * The egress allowlist of a detached container (`run -d` with `allow`):
 * its resolver and its reports' reader (ts/network/egress.ts) live in a
 * keeper, a small Node process of its own (ts/network/keeper-main.ts,
 * bundled as dist/keeper.cjs, without the CLI), since the caller goes
 * once the container runs.
 *
 * - The launch starts it in phase `network`, after ADD and before `go`, in
 *   a session of its own (setsid), its stderr to `keeper.log` in the
 *   container's state directory. It writes its record, sets the allowlist
 *   up, and says `ready` (or why not) on descriptor 3; only then is the
 *   container let go. A launch that fails after that kills it and removes
 *   what it made.
 * - It ends when the container's monitor does (the container ended), and
 *   removes the chain and rules then (Egress.close()). The container never
 *   outlives its policy: a keeper that is told to end (SIGTERM), or fails,
 *   kills the container first; the rules are only removed once it is gone.
 * - What the allowlist refused goes to `refused.json` in the state
 *   directory (the bounded summary, at most once a second, and at the end),
 *   which `inspect` and the API's state() show as `network.refused`.
 * - Its record (`/run/tsbox/network/<id>.keeper.json`: its pid and start
 *   time, the monitor's, the control socket) lets gc end a keeper whose
 *   container is gone, never an unrelated process that has its pid now,
 *   and remove the rules of a keeper that was killed (kill -9). A container
 *   whose keeper is gone while it runs keeps its chain (nothing but
 *   established traffic passes: its resolver is gone) until gc, which kills
 *   it, then removes its rules: never the rules of a running container.
 * - An ordinary user's (mode `ns`, pasta): the same keeper, as that user,
 *   runs startNsEgress (ts/network/egress-ns.ts) in the container's
 *   namespaces, which the launch opened from the container's process
 *   before it was let go and hands it as descriptors (NS_FDS), and says on
 *   `ready` the port of its resolver, which pasta forwards the container's
 *   DNS to. Its rules go with the namespace: what it keeps is the
 *   resolver, the reports' reader and refused.json, and what it ends is
 *   the container. Its record is in that user's state root
 *   (`network/<id>.keeper.json`, beside pasta's), collected by gcPasta:
 *   a container whose keeper is gone is killed first, then its pasta ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { AllowRule } from '../config/network.js';
import { processStart } from '../proc.js';
import { sleepSync } from '../sleep.js';
import { TsboxError, type FailureReport } from '../errors.js';
import { loadNative } from '../native.js';
import { toMonitor } from '../runtime/protocol.js';
import { removeEgress } from './egress.js';
import { NETWORK_DIR, recordNames } from './records.js';

/** Where keepers' records are: beside the bridge's (ts/network/records.ts). */
export const KEEPER_DIR = NETWORK_DIR;
/** The summary of what a detached container's allowlist refused, in its state directory. */
export const REFUSED_FILE = 'refused.json';
/** The keeper's own output (its failures; its trace with --trace), in the state directory. */
const KEEPER_LOG = 'keeper.log';
/** How long a keeper has to say it is ready. */
const READY_TIMEOUT_MS = 15_000;

/** A process as a record names it: its pid and start time (a pid alone may be reused). */
export interface ProcessId {
  pid: number;
  start: string;
}

/** What the keeper is started with (one JSON argument), whatever its mode. */
interface KeeperCommon {
  id: string;
  rules: AllowRule[];
  upstream: string | null;
  /** The container's state directory (refused.json). */
  dir: string;
  monitor: ProcessId;
  /** The monitor's control socket, through which the keeper kills the container. */
  control: string;
  trace: boolean;
}

/**
 * `bridge`: root's, the rules on the host (ts/network/egress.ts), for the
 * container's address and the host end of its veth. `ns`: an ordinary
 * user's (pasta), the rules in the container's own namespace
 * (ts/network/egress-ns.ts), entered through the descriptors the launch
 * hands it (NS_FDS); its record in that user's `records` directory.
 */
export type KeeperArgs = KeeperCommon & ({ mode: 'bridge'; ip: string; veth: string } | { mode: 'ns'; records: string });

/**
 * The descriptors of an `ns` keeper: the container's user and network
 * namespaces, opened by the launch from the container's process before it
 * was let go (so that no pid reused later stands in for it).
 */
export const NS_FDS = { user: 4, net: 5 } as const;

export interface KeeperRecord {
  id: string;
  keeper: ProcessId;
  monitor: ProcessId;
  control: string;
}

/** The keeper's first and only line on descriptor 3. */
export type KeeperReady = { ready: true; off: string | null; /** An `ns` keeper's resolver's port on the host's 127.0.0.1 (pasta forwards the container's DNS to it). */ port?: number } | { ready: false; error: FailureReport };

const ID = /^[0-9a-f]{64}$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/;

function isProcessId(v: unknown): v is ProcessId {
  const p = v as ProcessId;
  return typeof p === 'object' && p !== null && Number.isInteger(p.pid) && p.pid > 0 && typeof p.start === 'string' && /^\d+$/.test(p.start);
}

/** The keeper's argument, checked (it comes from the launch, but a keeper runs as root). Throws what is wrong. */
export function parseKeeperArgs(text: string): KeeperArgs {
  let a: KeeperArgs;
  try {
    a = JSON.parse(text) as KeeperArgs;
  } catch {
    throw new Error('the keeper\'s argument is not JSON');
  }
  const bad = (what: string): never => {
    throw new Error(`the keeper's argument has no valid ${what}`);
  };
  if (typeof a !== 'object' || a === null) bad('object');
  if (typeof a.id !== 'string' || !ID.test(a.id)) bad('id');
  if (a.mode === 'bridge') {
    if (typeof a.ip !== 'string' || !IPV4.test(a.ip)) bad('ip');
    if (typeof a.veth !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(a.veth)) bad('veth');
  } else if (a.mode === 'ns') {
    // Its user's state root's network/ (ts/network/pasta.ts, pastaDir).
    if (typeof a.records !== 'string' || !a.records.startsWith('/') || !a.records.endsWith('/network') || a.records.split('/').includes('..')) bad('records');
  } else bad('mode');
  if (!Array.isArray(a.rules) || a.rules.length === 0 || !a.rules.every((r) => r && (r.kind === 'host' || r.kind === 'net'))) bad('rules');
  if (a.upstream !== null && (typeof a.upstream !== 'string' || !IPV4.test(a.upstream))) bad('upstream');
  if (typeof a.dir !== 'string' || !a.dir.startsWith('/') || !a.dir.endsWith(a.id)) bad('dir');
  if (!isProcessId(a.monitor)) bad('monitor');
  if (typeof a.control !== 'string' || a.control !== join(a.dir, 'control.sock')) bad('control');
  if (typeof a.trace !== 'boolean') bad('trace');
  return a;
}

/** Where the keeper of `args` keeps its record: root's beside the bridge's, an ordinary user's in its state root. */
export function keeperDirOf(args: KeeperArgs): string {
  return args.mode === 'ns' ? args.records : KEEPER_DIR;
}

function keeperRecordPath(id: string, dir: string = KEEPER_DIR): string {
  return join(dir, `${id}.keeper.json`);
}

/** Written by the keeper itself, before it makes anything. */
export function writeKeeperRecord(r: KeeperRecord, dir: string = KEEPER_DIR): void {
  const path = keeperRecordPath(r.id, dir);
  // An ordinary user's directory goes with its last pasta record (pasta.ts,
  // endPasta): made again when it is gone.
  if (dir !== KEEPER_DIR) mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(`${path}.tmp`, JSON.stringify(r), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function removeKeeperRecord(id: string, dir: string = KEEPER_DIR): void {
  rmSync(keeperRecordPath(id, dir), { force: true });
  if (dir === KEEPER_DIR) return;
  // An ordinary user's, once empty (as pasta's are): a state root in /tmp
  // outlives its user, and a later user given the same uid would find it.
  try {
    rmdirSync(dir);
  } catch {
    // Another record is there, or it is gone already.
  }
}

function readKeeperRecord(path: string): KeeperRecord | null {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as KeeperRecord;
    return typeof r.id === 'string' && ID.test(r.id) && isProcessId(r.keeper) && isProcessId(r.monitor) && typeof r.control === 'string' ? r : null;
  } catch {
    return null;
  }
}

/**
 * Whether `p` is still that process, and (for a keeper) still the keeper of
 * container `id`: its start time is the recorded one and its command line
 * names the id.
 */
export function isAlive(p: ProcessId, id?: string): boolean {
  if (processStart(p.pid) !== p.start) return false;
  if (id === undefined) return true;
  try {
    return readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes(id);
  } catch {
    return false;
  }
}

/** Waits up to `ms` for `gone()`; whether it came. */
export function waitFor(gone: () => boolean, ms: number): boolean {
  for (let waited = 0; !gone(); waited += 20) {
    if (waited >= ms) return false;
    sleepSync(20);
  }
  return true;
}

/** SIGKILL to the container's PID 1 through its monitor's control socket; false when the monitor does not answer. */
function killContainer(control: string): boolean {
  try {
    const ch = loadNative().binding.Channel.connect(control);
    try {
      toMonitor.signal(ch, 9);
    } finally {
      ch.close();
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends container `monitor`'s processes: SIGKILL through its control socket,
 * then (a monitor that does not answer) the monitor itself, whose death
 * takes its container along. True once the monitor is gone.
 */
export function endContainer(monitor: ProcessId, control: string): boolean {
  if (!isAlive(monitor)) return true;
  if (killContainer(control) && waitFor(() => !isAlive(monitor), 5_000)) return true;
  try {
    if (isAlive(monitor)) process.kill(monitor.pid, 'SIGKILL');
  } catch {
    // Gone meanwhile.
  }
  return waitFor(() => !isAlive(monitor), 2_000);
}

/** What gc does with a keeper's record, from whether its keeper and its container's monitor live. */
export type KeeperVerdict = 'keep' | 'end-container' | 'end-keeper' | 'remove-rules';

export function keeperVerdict(keeperAlive: boolean, monitorAlive: boolean): KeeperVerdict {
  if (keeperAlive) return monitorAlive ? 'keep' : 'end-keeper';
  // A running container whose keeper is gone: its rules are removed only
  // once it is gone too (they are all that holds it).
  return monitorAlive ? 'end-container' : 'remove-rules';
}

/** How much a gc may do: `endProcesses` (default true), see gcKeepers. */
export interface GcMode {
  endProcesses?: boolean;
}

/** What gcKeepers does to the processes and rules (parameters, for its tests). */
export interface KeeperOps {
  keeperAlive: (r: KeeperRecord) => boolean;
  monitorAlive: (r: KeeperRecord) => boolean;
  /** Ends the container; true once its monitor is gone. */
  endContainer: (r: KeeperRecord) => boolean;
  /** Ends the keeper (SIGTERM, then SIGKILL); true once it is gone. */
  endKeeper: (r: KeeperRecord) => boolean;
  removeEgress: (id: string) => boolean;
}

function endKeeper(r: KeeperRecord): boolean {
  for (const [signal, ms] of [['SIGTERM', 5_000], ['SIGKILL', 2_000]] as const) {
    if (!isAlive(r.keeper, r.id)) return true;
    try {
      process.kill(r.keeper.pid, signal);
    } catch {
      return true;
    }
    if (waitFor(() => !isAlive(r.keeper, r.id), ms)) return true;
  }
  return false;
}

/** What gcKeepers does on this host (its default). */
export const hostKeeperOps: KeeperOps = {
  keeperAlive: (r) => isAlive(r.keeper, r.id),
  monitorAlive: (r) => isAlive(r.monitor),
  endContainer: (r) => endContainer(r.monitor, r.control),
  endKeeper,
  removeEgress,
};

/**
 * An ordinary user's keepers (mode `ns`): their rules are in the
 * container's namespace and go with it, so there are none to remove.
 */
export const nsKeeperOps: KeeperOps = { ...hostKeeperOps, removeEgress: () => true };

/**
 * The keepers of detached containers (see the header): a keeper whose
 * container is gone is ended (it removes its rules), a container whose
 * keeper is gone is killed, and the rules of both are removed with the
 * record. Returns the ids whose keeper records were collected.
 * `endProcesses: false` (a launch's collection in the background, which
 * must not hold its caller's thread while a process ends) leaves the pairs
 * of which one still runs to the next full gc, and removes only what both
 * dead ones left.
 */
export function gcKeepers(dir: string = KEEPER_DIR, ops: KeeperOps = hostKeeperOps, report?: (line: string) => void, { endProcesses = true }: GcMode = {}): string[] {
  const names = recordNames(dir, '.keeper.json');
  const collected: string[] = [];
  for (const name of names) {
    const r = readKeeperRecord(join(dir, name));
    if (!r || `${r.id}.keeper.json` !== name) continue;
    const verdict = keeperVerdict(ops.keeperAlive(r), ops.monitorAlive(r));
    if (verdict === 'keep' || (!endProcesses && verdict !== 'remove-rules')) continue;
    if (verdict === 'end-container') {
      if (!ops.endContainer(r)) continue;
      report?.(`tsbox: container ${r.id.slice(0, 12)} was killed: the keeper of its egress allowlist (pid ${r.keeper.pid}) was gone`);
    }
    if (verdict === 'end-keeper' && !ops.endKeeper(r)) continue;
    // The keeper removes its rules and record as it ends; what a killed one
    // left is removed here (the next gc tries again when it cannot be).
    if (!ops.removeEgress(r.id)) continue;
    removeKeeperRecord(r.id, dir);
    collected.push(r.id);
  }
  return collected;
}

/** The containers whose keeper still runs (a gc that ends no process leaves their rules to it). */
export function keepersAlive(dir: string = KEEPER_DIR, alive: (r: KeeperRecord) => boolean = hostKeeperOps.keeperAlive): Set<string> {
  const ids = new Set<string>();
  for (const name of recordNames(dir, '.keeper.json')) {
    const r = readKeeperRecord(join(dir, name));
    if (r && `${r.id}.keeper.json` === name && alive(r)) ids.add(r.id);
  }
  return ids;
}

/** dist/keeper.cjs, beside this bundle (dist/tsbox.js, dist/cli.cjs), or a checkout's from ts/ and tsc's dist/. */
export function keeperPath(here: string = dirname(fileURLToPath(import.meta.url)), exists: (p: string) => boolean = existsSync): string {
  const candidates = [join(here, 'keeper.cjs'), join(here, '..', 'keeper.cjs'), join(here, '..', '..', 'dist', 'keeper.cjs')];
  const found = candidates.find((p) => exists(p));
  if (!found) {
    throw new TsboxError({ step: 'network', errno: 2, path: candidates[0]!, detail: "the allowlist's keeper of a detached container is missing", hint: 'reinstall tsbox (a checkout: npm run build)' });
  }
  return found;
}

/** The last lines of the keeper's log, for an error. */
function logTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' / ');
  } catch {
    return '';
  }
}

export interface StartedKeeper {
  /** Why refused packets are not reported (no NFLOG), or null. */
  off: string | null;
  /** An `ns` keeper's resolver's port (for pasta's `-U 53:PORT`), or null. */
  port: number | null;
  /**
   * Ends the keeper now (SIGKILL) and removes what it made (a launch that
   * fails after it was ready); true when no rule is left.
   */
  stop: () => boolean;
}

/**
 * Starts the keeper of `args.id` and waits until its allowlist holds (or
 * throws why not). `ns`: the container's user and network namespaces, held
 * by this process (closed here once the keeper has its own), become its
 * NS_FDS (the caller closes its own once this returns).
 */
export async function startKeeper(args: KeeperArgs, trace?: (l: string) => void, ns?: { user: number; net: number }): Promise<StartedKeeper> {
  if ((args.mode === 'ns') !== (ns !== undefined)) throw new TsboxError({ step: 'network', errno: 22, path: 'keeper', detail: "an ordinary user's keeper is handed the container's namespaces, and only it", hint: 'this is a bug in tsbox' });
  const path = keeperPath();
  const logPath = join(args.dir, KEEPER_LOG);
  const log = openSync(logPath, 'a', 0o600);
  let child: ChildProcess;
  try {
    // Its own session: the caller's terminal's signals and its exit do not
    // reach it; in / it keeps no directory of the caller's busy.
    // (Descriptors 4 and 5, NS_FDS, in that order.)
    const held = ns ? [ns.user, ns.net] : [];
    // Its arguments on stdin: its command line, which every user may read, names only the container.
    child = spawn(process.execPath, [path, args.id], { detached: true, cwd: '/', stdio: ['pipe', 'ignore', log, 'pipe', ...held], env: process.env });
    (child.stdin as NodeJS.WritableStream | null)?.on('error', () => {});
    (child.stdin as NodeJS.WritableStream | null)?.end(JSON.stringify(args));
  } finally {
    closeSync(log);
  }
  const kill = () => {
    try {
      child.kill('SIGKILL');
    } catch {
      // Gone already.
    }
    // Its sockets and NFLOG group go with it; its rules on the host are
    // ours to remove (an `ns` keeper's are in the container's namespace).
    const pid = child.pid ?? 0;
    waitFor(() => pid === 0 || processStart(pid) === null, 5_000);
    const removed = args.mode === 'ns' || removeEgress(args.id);
    if (removed) removeKeeperRecord(args.id, keeperDirOf(args));
    return removed;
  };
  const ready = await new Promise<KeeperReady | string>((resolve) => {
    const fd3 = child.stdio[3] as NodeJS.ReadableStream | null;
    let text = '';
    const timer = setTimeout(() => resolve(`it did not say it was ready within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
    const done = (v: KeeperReady | string) => {
      clearTimeout(timer);
      resolve(v);
    };
    child.once('error', (err) => done(`it could not be started: ${err.message}`));
    fd3?.setEncoding('utf8');
    fd3?.on('data', (d: string) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      try {
        done(JSON.parse(text.slice(0, nl)) as KeeperReady);
      } catch {
        done(`it said ${JSON.stringify(text.slice(0, 200))}`);
      }
    });
    fd3?.on('end', () => done(`it ended without saying it was ready${logTail(logPath) ? ` (${logTail(logPath)})` : ''}`));
    fd3?.on('error', () => {});
  });
  (child.stdio[3] as NodeJS.ReadableStream & { destroy?: () => void } | null)?.destroy?.();
  if (typeof ready === 'string' || !ready.ready) {
    kill();
    if (typeof ready !== 'string') throw new TsboxError(ready.error);
    throw new TsboxError({ step: 'network', errno: 0, path: path, detail: `the allowlist's keeper of the detached container: ${ready}`, hint: `its log is ${logPath}` });
  }
  // It runs on without this process.
  child.unref();
  trace?.(`network: allowlist keeper pid=${String(child.pid)} (its log: ${logPath})`);
  if (args.mode === 'ns' && !(Number.isInteger(ready.port) && ready.port! > 0 && ready.port! < 65536)) {
    kill();
    throw new TsboxError({ step: 'network', errno: 0, path, detail: "the allowlist's keeper of the detached container named no resolver port", hint: 'this is a bug in tsbox' });
  }
  return { off: ready.off, port: ready.port ?? null, stop: kill };
}
