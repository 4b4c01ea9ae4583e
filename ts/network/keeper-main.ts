/**
 * The keeper of a detached container's egress allowlist (see
 * ts/network/keeper.ts): `node dist/keeper.cjs '<KeeperArgs as JSON>'`,
 * started by the launch with descriptor 3 to say `ready` on. It runs the
 * allowlist (root's, mode `bridge`: startEgress, the resolver, the chain,
 * the reports' reader; an ordinary user's, mode `ns`: startNsEgress in the
 * namespaces handed to it as descriptors 4 and 5, and it says its
 * resolver's port) until the container's monitor is gone, writing what was
 * refused into the state directory, then removes the rules and its record
 * and exits.
 *
 * Whatever ends it otherwise (SIGTERM, SIGINT, SIGHUP, a failure of its
 * own) ends the container first: its rules are never removed while the
 * container runs. And once the container runs, the keeper holds a `guard`
 * connection on its control socket, which the monitor answers by killing
 * the container when it closes: a keeper killed (kill -9, the OOM killer)
 * takes the container with it, and nothing is left answering, or free to
 * be taken, at the port its DNS goes to.
 *
 * (Its command line, which names the container's id, is how gc tells it
 * from another process given its pid: it sets no process.title, which
 * would overwrite it.)
 */
import { closeSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { processStart } from '../proc.js';
import { TsboxError } from '../errors.js';
import { startEgress, type Egress } from './egress.js';
import { startNsEgress } from './egress-ns.js';
import { endContainer, isAlive, keeperDirOf, NS_FDS, parseKeeperArgs, REFUSED_FILE, removeKeeperRecord, writeKeeperRecord, type KeeperArgs, type KeeperReady } from './keeper.js';
import { Refusals, type RefusedSummary } from './refused.js';
import { loadNative } from '../native.js';
import { toMonitor } from '../runtime/protocol.js';

/** How often the monitor is looked at, and refused.json brought up to date (when it changed). */
const WATCH_MS = 250;
const WRITE_MS = 1000;
/** How long the container's control socket may take to appear (it is made once the container is let go). */
const GUARD_WAIT_MS = 15_000;

/** The guard connection (see above), held for this process's life: its close kills the container. */
let _guard: unknown = null;

function log(line: string): void {
  try {
    process.stderr.write(`tsbox-keeper[${process.pid}] ${new Date().toISOString()} ${line}\n`);
  } catch {
    // No log: nothing to say it on.
  }
}

/** Says `msg` to the launch on descriptor 3, once. */
let told = false;
function tell(msg: KeeperReady): void {
  if (told) return;
  told = true;
  try {
    writeSync(3, `${JSON.stringify(msg)}\n`);
    closeSync(3);
  } catch {
    // The launch is gone: the container goes with it (it never got `go`), and the monitor with it.
  }
}

function writeRefused(dir: string, summary: RefusedSummary): void {
  const path = join(dir, REFUSED_FILE);
  try {
    writeFileSync(`${path}.tmp`, JSON.stringify(summary), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  } catch {
    // The state directory is gone (tsbox rm): nothing to show it in.
    rmSync(`${path}.tmp`, { force: true });
  }
}

async function main(): Promise<void> {
  let args: KeeperArgs;
  try {
    // The arguments come on stdin (the command line, which every user may
    // read, names only the container); they must be for that container.
    args = parseKeeperArgs(readFileSync(0, 'utf8'));
    if (args.id !== process.argv[2]) throw new Error(`the arguments are for container ${args.id}, not ${String(process.argv[2])}`);
  } catch (err) {
    tell({ ready: false, error: { step: 'network', errno: 22, path: 'keeper', detail: (err as Error).message, hint: 'this is a bug in tsbox' } });
    process.exit(2);
  }
  const { id, dir, monitor, control } = args;
  const records = keeperDirOf(args);
  let port: number | undefined;
  const trace = args.trace ? log : undefined;
  const refusals = new Refusals();
  let egress: Egress | null = null;
  let ending = false;
  let written = -1;
  const flush = () => {
    const s = refusals.summary();
    if (s.total === written) return;
    written = s.total;
    writeRefused(dir, s);
  };

  /** Ends the container (unless `gone`), then the allowlist; exits. */
  const end = (why: string, status: number) => {
    if (ending) return;
    ending = true;
    trace?.(`ending: ${why}`);
    if (!endContainer(monitor, control)) {
      // Its rules stay (they hold it) with the record, for gc.
      log(`the container's monitor ${monitor.pid} would not end; its rules stay for tsbox gc`);
      process.exit(1);
    }
    let removed = true;
    try {
      egress?.close();
    } catch (err) {
      removed = false;
      log((err as Error).message);
    }
    written = -1;
    flush();
    // While a rule is left, the record stays: gc removes them by it.
    if (removed) removeKeeperRecord(id, records);
    process.exit(removed ? status : 1);
  };

  try {
    writeKeeperRecord({ id, keeper: { pid: process.pid, start: processStart(process.pid) ?? '' }, monitor, control }, records);
  } catch (err) {
    tell({ ready: false, error: { step: 'network', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0), path: records, detail: `write the keeper's record: ${(err as Error).message}`, hint: args.mode === 'ns' ? "this user's state root must be writable" : 'run as root' } });
    process.exit(1);
  }
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => end(sig, 0));
  // Whatever a container sends must not end the keeper with its rules in
  // place and nobody to answer: a failure of its own ends the container.
  process.on('uncaughtException', (err) => {
    log(`failed: ${err.stack ?? err.message}`);
    end('a failure of its own', 1);
  });

  try {
    if (args.mode === 'bridge') egress = await startEgress(id, args.ip, args.veth, args.rules, args.upstream, trace, refusals);
    else {
      const ns = await startNsEgress(NS_FDS, args.rules, args.upstream, trace, refusals);
      egress = ns;
      port = ns.port;
    }
  } catch (err) {
    const e = err instanceof TsboxError ? { step: err.step, errno: err.errno, path: err.path ?? null, detail: err.message, hint: err.hint ?? null } : { step: 'network', errno: 0, path: 'keeper', detail: (err as Error).message, hint: null };
    tell({ ready: false, error: e });
    removeKeeperRecord(id, records);
    process.exit(1);
  }
  // The container may have gone meanwhile (a launch that failed).
  if (!isAlive(monitor)) end('the container ended before it was ready', 0);
  flush();
  tell({ ready: true, off: refusals.off, ...(port === undefined ? {} : { port }) });
  // The guard, once the monitor serves its control socket (after `go`).
  const since = Date.now();
  const guarding = setInterval(() => {
    try {
      const ch = loadNative().binding.Channel.connect(control);
      toMonitor.guard(ch);
      _guard = ch;
      clearInterval(guarding);
      trace?.('guarding the container through its control socket');
    } catch (err) {
      if (!isAlive(monitor)) return;
      if (Date.now() - since > GUARD_WAIT_MS) end(`no guard on the control socket ${control}: ${(err as Error).message}`, 1);
    }
  }, 20);
  setInterval(() => {
    if (!isAlive(monitor)) end("the container's monitor is gone", 0);
  }, WATCH_MS);
  setInterval(flush, WRITE_MS);
}

void main();
