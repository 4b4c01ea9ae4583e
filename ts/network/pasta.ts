/**
 * Network `bridge` for an ordinary user (and `pasta` for anyone): pasta, from
 * Debian's `passt` package, joins the container's user and network
 * namespaces (its owner may), makes a tap interface there with the host's
 * address and routes (--config-net), and carries the container's traffic
 * through ordinary sockets of the user on the host; published ports are
 * sockets it listens on. Nothing on the host changes: no veth, no rule, no
 * sysctl.
 *
 * What it may reach is the host's network as the user sees it, except the
 * host's own loopback: --no-map-gw and `-T none -U none` keep the
 * gateway's address and the container's loopback from leading to services
 * listening on the host's 127.0.0.1. With an egress allowlist
 * (ts/network/egress-ns.ts), one port of it is let through: UDP to the
 * container's 127.0.0.1:53 goes to its resolver's port on the host's
 * 127.0.0.1 (`-U 53:PORT`), and pasta is IPv4 only (`-4`; the rules refuse
 * IPv6 too).
 *
 * pasta runs as a daemon of its own (it does not end with the container);
 * it is ended (by the pid it wrote, checked by its command line) on the way out, and a record in this user's state root
 * (`network/<id>.pasta.json`) lets gc end it once the container's monitor is gone.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';

import type { PortMapping } from '../config/network.js';
import { fromSystemError, TsboxError } from '../errors.js';
import { stateRoot } from '../state-root.js';
import { processStart } from '../proc.js';
import { gcKeepers, nsKeeperOps, type GcMode, type KeeperOps } from './keeper.js';
import { recordNames } from './records.js';
import type { NetworkInfo } from './bridge.js';

const PASTA_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin'];

interface PastaRecord {
  id: string;
  /** Where pasta writes its pid (the daemon's), which names the container's id: how it is found and recognised. */
  pidFile: string;
  monitor: { pid: number; start: string };
}

/** Where this user's pasta records are (and its detached containers' allowlist keepers', ts/network/keeper.ts). */
export function pastaDir(root: string = stateRoot()): string {
  return join(root, 'network');
}

/**
 * pasta's path; a missing one is a one-line error naming the package, and
 * so is a /dev/net/tun this user may not open (pasta makes its interface
 * through it; distributions make it 0666, some VMs leave it 0600).
 */
export function findPasta(dirs: readonly string[] = PASTA_DIRS, exists: (p: string) => boolean = existsSync, tun = '/dev/net/tun'): string {
  const found = dirs.map((d) => join(d, 'pasta')).find((p) => exists(p));
  if (found) {
    try {
      accessSync(tun, fsConstants.R_OK | fsConstants.W_OK);
    } catch (err) {
      throw new TsboxError({
        step: 'network',
        errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 13),
        path: tun,
        detail: 'this user may not open the tun device, through which pasta makes the container\'s interface',
        hint: `ask root to make it usable as distributions do (chmod 0666 ${tun}; creating an interface still needs a namespace of one's own)`,
      });
    }
    return found;
  }
  throw new TsboxError({
    step: 'network',
    errno: 2,
    path: 'pasta',
    detail: `pasta is not installed (looked in ${dirs.join(', ')}); an ordinary user's bridged container needs it`,
    hint: 'install the package passt (apt-get install passt), or run as root for the CNI bridge',
  });
}

/**
 * pasta's arguments: published ports as `-t`/`-u` specs, nothing from the
 * container's side to the host's loopback but, with an allowlist, its DNS
 * (port 53) to the resolver's port `resolver`.
 */
export function pastaArgs(pid: number, ports: readonly PortMapping[], pidFile: string, resolver: number | null = null): string[] {
  // One option per mapping: in one comma-separated spec pasta binds every
  // port to the address given first (`127.0.0.1/8443:443,8080:80` puts
  // 8080 on loopback only) and refuses an address after a port.
  const specs = (flag: '-t' | '-u', proto: 'tcp' | 'udp') => {
    const list = ports.filter((p) => p.protocol === proto).flatMap((p) => [flag, `${p.hostIp ? `${p.hostIp}/` : ''}${p.hostPort}:${p.containerPort}`]);
    return list.length > 0 ? list : [flag, 'none'];
  };
  const toHost = resolver === null ? ['-U', 'none'] : ['-4', '-U', `53:${resolver}`];
  return ['--config-net', '--quiet', '--no-map-gw', ...specs('-t', 'tcp'), ...specs('-u', 'udp'), '-T', 'none', ...toHost, '-P', pidFile, String(pid)];
}

/** The host's interface with the default route, whose address pasta gives the container. */
export function defaultInterface(routes: string = readFileSync('/proc/net/route', 'utf8')): string | null {
  for (const line of routes.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === '00000000' && f[7] === '00000000') return f[0] ?? null;
  }
  return null;
}

function pastaInfo(ports: PortMapping[]): NetworkInfo {
  let iface: string | null = null;
  try {
    iface = defaultInterface();
  } catch {
    // No routes readable: the addresses stay unknown.
  }
  const addrs = iface ? (networkInterfaces()[iface] ?? []).filter((a) => a.family === 'IPv4' || !a.address.startsWith('fe80')).map((a) => a.cidr ?? a.address) : [];
  return { mode: 'bridge', driver: 'pasta', interfaces: iface ? [{ name: iface, mac: null, addresses: addrs }] : [], gateway: null, hostInterface: null, bridge: null, ports };
}

function writeRecord(dir: string, r: PastaRecord): void {
  const path = join(dir, `${r.id}.pasta.json`);
  // The directory goes with its last record (endPasta): made again when
  // another container's end took it between mkdir and this write.
  try {
    writeFileSync(`${path}.tmp`, JSON.stringify(r), { mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(`${path}.tmp`, JSON.stringify(r), { mode: 0o600 });
  }
  renameSync(`${path}.tmp`, path);
}

/**
 * Ends the pasta of record `r` (the pid in its pid file, if that process is
 * still the pasta started with that file: its command line names it), and
 * removes the record and the pid file.
 */
function endPasta(dir: string, r: PastaRecord): void {
  let pid = 0;
  try {
    pid = Number(readFileSync(r.pidFile, 'utf8').trim());
  } catch {
    // It never got that far.
  }
  if (pid > 0) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(r.pidFile)) process.kill(pid, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  rmSync(r.pidFile, { force: true });
  rmSync(join(dir, `${r.id}.pasta.json`), { force: true });
  // The directory, once empty: a state root in /tmp outlives its user, and a
  // later user given the same uid would find it.
  try {
    rmdirSync(dir);
  } catch {
    // Another container's record is there, or it is gone already.
  }
}

/** Phase `network` with pasta; returns the container's network and its undo. */
export async function attachPasta(id: string, pid: number, monitorPid: number, ports: PortMapping[], pasta: string, trace?: (l: string) => void, resolver: number | null = null): Promise<{ info: NetworkInfo; detach: () => void }> {
  const dir = pastaDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pidFile = join(dir, `${id}.pasta.pid`);
  const args = pastaArgs(pid, ports, pidFile, resolver);
  // Written first: a caller killed while pasta starts leaves gc what to end.
  const record: PastaRecord = { id, pidFile, monitor: { pid: monitorPid, start: processStart(monitorPid) ?? '' } };
  writeRecord(dir, record);
  let status: number | null;
  let stderr: string;
  try {
    ({ status, stderr } = await new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
      // It daemonizes once its interface is configured: its exit is the go-ahead.
      const child = spawn(pasta, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ status: code, stderr: err }));
    }));
  } catch (err) {
    endPasta(dir, record);
    throw fromSystemError('network', err, `start ${pasta}`, 'install passt (apt-get install passt), or use --network none');
  }
  if (status !== 0 || !existsSync(pidFile)) {
    endPasta(dir, record);
    throw new TsboxError({
      step: 'network',
      errno: 0,
      path: pasta,
      detail: `pasta ${args.join(' ')} failed (status ${String(status)}): ${stderr.trim().split('\n').pop() ?? ''}`,
      hint: 'a published host port may be taken (pasta listens on it), or pasta may not join the container\'s namespaces here',
    });
  }
  trace?.(`network: pasta pid=${readFileSync(pidFile, 'utf8').trim()}`);
  let done = false;
  return {
    info: pastaInfo(ports),
    detach: () => {
      if (done) return;
      done = true;
      endPasta(dir, record);
    },
  };
}

/**
 * Ends the pasta of every container of this user whose monitor is gone.
 * Its detached containers' allowlist keepers first (ts/network/keeper.ts):
 * a container whose keeper is gone is killed (`report` says so), so that
 * its pasta ends below; a keeper whose container is gone is ended.
 */
export function gcPasta(dir: string = pastaDir(), report?: (line: string) => void, keeperOps: KeeperOps = nsKeeperOps, mode: GcMode = {}): string[] {
  try {
    gcKeepers(dir, keeperOps, report, mode);
  } catch {
    // Best effort: each record is tried again by the next gc.
  }
  const names = recordNames(dir, '.pasta.json');
  const collected: string[] = [];
  for (const name of names) {
    let r: PastaRecord;
    try {
      r = JSON.parse(readFileSync(join(dir, name), 'utf8')) as PastaRecord;
    } catch {
      continue;
    }
    // A record names only its own pid file (the one attachPasta writes), and its own id.
    if (typeof r?.id !== 'string' || name !== `${r.id}.pasta.json` || r.pidFile !== join(dir, `${r.id}.pasta.pid`) || typeof r.monitor?.pid !== 'number') continue;
    if (r.monitor.start !== '' && processStart(r.monitor.pid) === r.monitor.start) continue;
    // pasta is still starting (its pid not written yet): left a minute.
    if (!existsSync(r.pidFile) && Date.now() - statSync(join(dir, name)).mtimeMs < 60_000) continue;
    endPasta(dir, r);
    collected.push(r.id);
  }
  return collected;
}
