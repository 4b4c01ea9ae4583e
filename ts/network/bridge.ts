/**
 * Network `bridge`: the container's own namespace gets a veth to tsbox's
 * bridge `tsbox0`, an address on 10.89.0.0/16, a default route, NAT to the
 * host's uplink and its published ports, all made by the CNI plugins
 * (ts/network/cni.ts) in phase `network`, and deleted on every way out:
 *
 * - the launch fails halfway, or the container ends: the caller runs DEL
 *   (launch's undo), while it still holds the container's namespace open,
 *   so that the plugins find their interface and remove all they added;
 * - the caller is gone (kill -9): a record of what was added,
 *   `/run/tsbox/network/<id>.json`, written before ADD, is collected by the
 *   next start or `tsbox gc` once the container's monitor is gone (DEL, the
 *   NAT rule bridge leaves without the interface, and an allowlist's chain,
 *   ts/network/egress.ts).
 *
 * The bridge goes when its last container does, with the rules that keep
 * its containers off the host's loopback and off the host over IPv6
 * (GUARD_RULES, added before the first ADD). One host-wide lock
 * (`bridge.lock`) orders the two: a launch adds the rules and writes its
 * record under it, before ADD creates the bridge; a teardown removes the
 * bridge under it only when no record is left. (net.ipv4.ip_forward, which
 * the bridge plugin turns on, is left on, as podman and Docker leave it:
 * another program may rely on it by now.)
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

import type { AllowRule, PortMapping } from '../config/network.js';
import type { RefusedSummary } from './refused.js';
import { processStart } from '../proc.js';
import { TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { removeEgress } from './egress.js';
import { gcKeepers, hostKeeperOps, keepersAlive, type GcMode } from './keeper.js';
import { NETWORK_DIR, recordNames } from './records.js';
import { add, AddFailed, BRIDGE, bridgeConfList, cniPath, del, runPlugin, type CniTarget, type ConfList } from './cni.js';
import type { Mount, SandboxPlan } from '../generated/wire.js';

export { NETWORK_DIR };
const IPAM_DIR = join(NETWORK_DIR, 'ipam');

/** The container's interface and address, as `inspect`, `--report` and the API show them. */
export interface NetworkInfo {
  mode: string;
  /** What made a bridged container's network: the CNI plugins (root), or pasta (an ordinary user). */
  driver?: 'cni' | 'pasta';
  interfaces: { name: string; mac: string | null; addresses: string[] }[];
  gateway: string | null;
  /** The host end of its veth. */
  hostInterface: string | null;
  bridge: string | null;
  ports: PortMapping[];
  /** `tsbox inspect` of a running container: the plugins' CNI CHECK, `ok` or what is wrong. */
  check?: string;
  /** Its egress allowlist, when it has one. */
  allow?: AllowRule[];
  /** In a result, with an allowlist: what it refused (ts/network/refused.ts). */
  refused?: RefusedSummary;
}

/** What was added for a container: enough for DEL from any process. */
export interface NetworkRecord {
  id: string;
  list: ConfList;
  cniPath: string;
  ifname: string;
  ports: PortMapping[];
  /** The container's monitor, with its start time (a pid alone may be reused). */
  monitor: { pid: number; start: string };
  /** The last ADD's result, once it finished. */
  result: unknown;
}

interface CniResult {
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
}

/** Phase `network`, decided before anything exists (as root): the plugins installed. */
export function checkBridge(opts: { ipv6Off?: boolean } = {}): { list: ConfList; cniPath: string } {
  const list = bridgeConfList(IPAM_DIR, opts);
  return { list, cniPath: cniPath(list) };
}

/**
 * The container's /etc/hosts as a file of its state directory, bound
 * read-only, so that its address can be added once ADD has given it: the
 * child opens the file after `go`, which comes after phase `network`.
 * Returns the writer of that line, or null when the plan has no /etc/hosts.
 */
export function hostsInState(sandbox: SandboxPlan, dir: string): ((address: string) => void) | null {
  const at = sandbox.mounts.findIndex((m) => m.target === '/etc/hosts' && m.type === 'file');
  if (at < 0) return null;
  const base = (sandbox.mounts[at] as Extract<Mount, { type: 'file' }>).contents;
  const path = join(dir, 'hosts');
  writeFileSync(path, base, { mode: 0o644 });
  sandbox.mounts[at] = { target: '/etc/hosts', type: 'bind', source: path, recursive: false, readonly: true, nosuid: true, nodev: true, noexec: true, optional: true };
  // Its name on its address instead of loopback's, as Docker's: what
  // `hostname -i` and a server binding its own name find.
  const own = base.replace(`127.0.0.1\tlocalhost ${sandbox.hostname}\n`, '127.0.0.1\tlocalhost\n');
  return (address) => writeFileSync(path, `${own}${address}\t${sandbox.hostname}\n`, { mode: 0o644 });
}

/** Whether two published ports take the same host port (an empty address is every address). */
export function samePort(a: PortMapping, b: PortMapping): boolean {
  return a.hostPort === b.hostPort && a.protocol === b.protocol && (a.hostIp === '' || b.hostIp === '' || a.hostIp === b.hostIp);
}

/**
 * A port of `ports` another live bridged container publishes (its record,
 * written before its ADD, says so): portmap would add a second DNAT rule
 * that never matches, so the second container is refused, as Docker's.
 */
export function portTaken(id: string, ports: readonly PortMapping[], dir: string = NETWORK_DIR): TsboxError | null {
  if (ports.length === 0 || !existsSync(dir)) return null;
  let keeping: Set<string> | undefined;
  for (const name of recordNames(dir, '.json').filter((n) => n !== `${id}.json`)) {
    let r: NetworkRecord;
    try {
      r = JSON.parse(readFileSync(join(dir, name), 'utf8')) as NetworkRecord;
    } catch {
      continue;
    }
    // A container that is gone holds no port, unless its allowlist's keeper
    // still runs: gc leaves its network (and DNAT rules) to that keeper.
    const gone = r.monitor.start !== '' && processStart(r.monitor.pid) !== r.monitor.start;
    if (gone && !(keeping ??= keepersAlive(dir)).has(r.id)) continue;
    for (const p of ports) {
      if (r.ports.some((q) => samePort(p, q))) {
        return new TsboxError({
          step: 'network',
          errno: 98,
          path: `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}/${p.protocol}`,
          detail: gone ? `the host port is still published by container ${r.id.slice(0, 12)}, which ended: the keeper of its allowlist is removing its network` : `the host port is published by container ${r.id.slice(0, 12)} already`,
          hint: gone ? 'try again in a moment, or run tsbox gc' : 'publish another host port, or stop that container',
        });
      }
    }
  }
  return null;
}

/**
 * A host process listening on a port to publish: portmap's DNAT would take
 * its traffic from it silently, so it is refused, as Docker's proxy's bind
 * would fail. Tried by binding it for a moment.
 */
export async function portInUse(ports: readonly PortMapping[]): Promise<TsboxError | null> {
  for (const p of ports) {
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      if (p.protocol === 'udp') {
        const sock = createSocket(p.hostIp.includes(':') ? 'udp6' : 'udp4');
        sock.once('error', (e) => resolve(e));
        sock.bind({ port: p.hostPort, address: p.hostIp || undefined, exclusive: true }, () => sock.close(() => resolve(null)));
      } else {
        const srv = createServer();
        srv.once('error', (e) => resolve(e));
        srv.listen({ port: p.hostPort, host: p.hostIp || undefined, exclusive: true }, () => srv.close(() => resolve(null)));
      }
    });
    if (err?.code === 'EADDRINUSE') {
      return new TsboxError({
        step: 'network',
        errno: 98,
        path: `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}/${p.protocol}`,
        detail: 'a process of the host listens on that port',
        hint: 'publish another host port (-p HOSTPORT:CONTAINERPORT)',
      });
    }
  }
  return null;
}

function recordPath(id: string): string {
  return join(NETWORK_DIR, `${id}.json`);
}

/** Removes a record (gone already when another process's gc took it). */
function forget(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function writeRecord(r: NetworkRecord): void {
  const path = recordPath(r.id);
  writeFileSync(`${path}.tmp`, JSON.stringify(r), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/**
 * The rules that keep the bridge's containers off the host's loopback, and
 * off the host over IPv6.
 *
 * portmap (for a port published on 127.0.0.1) turns `route_localnet` on for
 * tsbox0, and never off: the host then routes a frame from the bridge to
 * 127.0.0.0/8, which a container with CAP_NET_RAW can write through the
 * gateway's MAC, to a service of the host that listens on 127.0.0.1 only
 * (CVE-2020-8558, the rule Kubernetes adds). So, as Kubernetes:
 *
 * - filter INPUT: from tsbox0 to 127.0.0.0/8, drop what conntrack does not
 *   know as the reply to a connection (a published port's answer to the
 *   host's 127.0.0.1, portmap's hairpin, is ESTABLISHED; its source is the
 *   container's until nat INPUT, after filter, undoes the DNAT);
 * - raw PREROUTING: from tsbox0 with a 127.0.0.0/8 source, drop it all
 *   (nothing on the bridge has one: portmap masquerades the hairpin to the
 *   gateway), else such a source could pass as the host's own connection.
 *
 * The bridge is IPv4 only, but a container's interface has an IPv6
 * link-local address (unless it is allowlisted, and then until something
 * turns IPv6 back on in its namespace), which reaches every host service
 * listening on `::`, around IPv4's rules, an allowlist's included. So
 * ip6tables drops what comes in from tsbox0, to the host or through it.
 *
 * Host-wide, as the bridge is, and as lasting: each is added once (checked
 * with -C first), with the comment `tsbox:bridge-guard`. Two launches at
 * once may each add one; a second identical DROP changes nothing.
 */
const GUARD = ['-m', 'comment', '--comment', 'tsbox:bridge-guard', '-j', 'DROP'];
export const GUARD_RULES: readonly { cmd: 'iptables' | 'ip6tables'; table: string; chain: string; rule: string[] }[] = [
  { cmd: 'iptables', table: 'raw', chain: 'PREROUTING', rule: ['-i', BRIDGE.bridge, '-s', '127.0.0.0/8', ...GUARD] },
  { cmd: 'iptables', table: 'filter', chain: 'INPUT', rule: ['-i', BRIDGE.bridge, '-d', '127.0.0.0/8', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED,DNAT', ...GUARD] },
  { cmd: 'ip6tables', table: 'filter', chain: 'INPUT', rule: ['-i', BRIDGE.bridge, ...GUARD] },
  { cmd: 'ip6tables', table: 'filter', chain: 'FORWARD', rule: ['-i', BRIDGE.bridge, ...GUARD] },
];

/**
 * Runs `fn` holding the bridge network's host-wide lock (see the header):
 * short sections only, never a plugin's ADD or DEL.
 */
function withBridgeLock<T>(fn: () => T): T {
  mkdirSync(NETWORK_DIR, { recursive: true, mode: 0o700 });
  const lock = loadNative().binding.waitLockFile(join(NETWORK_DIR, 'bridge.lock'), `${process.pid}\n`);
  try {
    return fn();
  } finally {
    lock.unlock();
  }
}

/** The records of bridged containers (a launch writes one before its ADD). */
function records(dir: string = NETWORK_DIR): string[] {
  return recordNames(dir, '.json');
}

/**
 * Once no bridged container is left (no record): the bridge and its guard
 * rules go. Returns whether it removed the bridge. Best effort: what it
 * could not remove, the next teardown tries again.
 */
export function removeBridgeIfUnused(trace?: (l: string) => void): boolean {
  return withBridgeLock(() => {
    if (records().length > 0 || !existsSync(`/sys/class/net/${BRIDGE.bridge}`)) return false;
    const del = spawnSync('ip', ['link', 'del', BRIDGE.bridge], { encoding: 'utf8' });
    if (del.status !== 0) {
      // Its guard rules stay with it; the next teardown tries again.
      trace?.(`network: ip link del ${BRIDGE.bridge} failed (${(del.stderr || del.error?.message || `status ${String(del.status)}`).trim()}); it stays`);
      return false;
    }
    for (const { cmd, table, chain, rule } of GUARD_RULES) {
      for (let i = 0; i < 8 && spawnSync(cmd, ['-w', '-t', table, '-D', chain, ...rule]).status === 0; i++);
    }
    trace?.(`network: ${BRIDGE.bridge} removed with its guard rules, no bridged container is left`);
    return true;
  });
}

function guardBridge(): void {
  for (const { cmd, table, chain, rule } of GUARD_RULES) {
    const check = spawnSync(cmd, ['-w', '-t', table, '-C', chain, ...rule], { encoding: 'utf8' });
    if (check.status === 0) continue;
    const insert = check.status === 1 ? spawnSync(cmd, ['-w', '-t', table, '-I', chain, '1', ...rule], { encoding: 'utf8' }) : check;
    if (insert.status !== 0) {
      throw new TsboxError({
        step: 'network',
        errno: 0,
        path: `${cmd} -t ${table} ${chain}`,
        detail: `could not add the rule that keeps containers off the host (${rule.join(' ')}): ${(insert.stderr || insert.error?.message || '').trim()}`,
        hint: 'the bridge network needs iptables and ip6tables with the raw table and the conntrack and comment matches',
      });
    }
  }
}

/** Whether descriptor `fd` and `path` are the same namespace (device and inode). */
function sameNamespace(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(path);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** The container's interfaces and addresses from the ADD result. */
export function networkInfo(result: unknown, ports: PortMapping[], ifname = 'eth0'): NetworkInfo {
  const r = (result ?? {}) as CniResult;
  const ifaces = r.interfaces ?? [];
  const inside = ifaces.map((iface, i) => ({ iface, i })).filter(({ iface }) => iface.sandbox);
  const host = ifaces.find((i) => !i.sandbox && i.name !== BRIDGE.bridge);
  const ips = r.ips ?? [];
  return {
    mode: 'bridge',
    driver: 'cni',
    interfaces: inside.map(({ iface, i }) => ({ name: iface.name, mac: iface.mac ?? null, addresses: ips.filter((ip) => ip.interface === i || (ip.interface === undefined && iface.name === ifname)).map((ip) => ip.address) })),
    gateway: ips.find((ip) => ip.gateway)?.gateway ?? null,
    hostInterface: host?.name ?? null,
    bridge: BRIDGE.bridge,
    ports,
  };
}

export interface Attached {
  info: NetworkInfo;
  /** DEL, once, on any path; throws the first failure (the record stays for gc then). */
  detach: () => void;
  /** No DEL: the record stays for gc, and the namespace is let go (what was added on top could not be removed). */
  abandon: () => void;
}

/**
 * ADD for container `id`, whose PID 1 is `pid` (its namespace is held open
 * until detach) and whose monitor is `monitorPid`.
 */
export async function attachBridge(id: string, pid: number, monitorPid: number, ports: PortMapping[], prepared: { list: ConfList; cniPath: string }, keep: boolean, trace?: (l: string) => void): Promise<Attached> {
  mkdirSync(IPAM_DIR, { recursive: true, mode: 0o700 });
  let nsfd: number | null = openSync(`/proc/${pid}/ns/net`, 'r');
  // Never the caller's own namespace (the host's, as a rule): the plugins
  // would move interfaces and set sysctls there.
  if (sameNamespace(nsfd, '/proc/self/ns/net')) {
    closeSync(nsfd);
    throw new TsboxError({ step: 'network', errno: 22, path: `/proc/${pid}/ns/net`, detail: "is this process's own network namespace, not one of the container's", hint: 'this is a bug in tsbox: a bridged container has a net namespace of its own' });
  }
  // ADD names the namespace by the container's pid (it waits for `network`
  // meanwhile), which is what CHECK names it by too; DEL by the descriptor,
  // which holds it even once the container has ended.
  const target: CniTarget = { containerId: id, netns: `/proc/${pid}/ns/net`, ifname: 'eth0', cniPath: prepared.cniPath };
  const held = () => ({ ...target, netns: `/proc/${process.pid}/fd/${nsfd}` });
  const record: NetworkRecord = { id, list: prepared.list, cniPath: prepared.cniPath, ifname: target.ifname, ports, monitor: { pid: monitorPid, start: processStart(monitorPid) ?? '' }, result: null };
  let result: unknown;
  let added = false;
  try {
    // Before the bridge exists (ADD makes it): portmap turns route_localnet
    // on. With the record, under the lock a teardown removes the bridge under.
    withBridgeLock(() => {
      guardBridge();
      writeRecord(record);
    });
    // A container that ended without its DEL (its caller killed) still
    // has its DNAT rules, ahead of this one's: its network goes first, now,
    // not when some gc gets to it.
    if (ports.length > 0) gcNetworks(undefined, undefined, undefined, { endProcesses: false });
    // Checked once this container's record is there: of two launches at
    // once with the same port, each sees the other's.
    const taken = portTaken(id, ports);
    if (taken) throw taken;
    // ADD names it by the pid: still the namespace held, not that of some
    // process given the pid of a container that died meanwhile.
    if (!sameNamespace(nsfd, target.netns)) {
      throw new TsboxError({ step: 'network', errno: 3, path: target.netns, detail: 'the container ended before its network was made (its pid names another namespace now)', hint: 'run with --trace to see why it ended' });
    }
    result = await add(prepared.list, target, ports, trace);
    added = true;
    writeRecord({ ...record, result });
  } catch (err) {
    // What is left: add() deleted what it had added when one plugin failed
    // (and says whether all of it went); after a whole ADD, DEL is ours.
    let left = err instanceof AddFailed && err.rollback.length > 0;
    if (added) {
      left = del(prepared.list, held(), result, ports).length > 0;
      removeMasquerade(id);
    }
    closeSync(nsfd);
    nsfd = null;
    // The record goes only with all of it: otherwise it is gc's to retry.
    if (!left) {
      try {
        unlinkSync(recordPath(id));
      } catch {
        // Never written.
      }
      try {
        removeBridgeIfUnused(trace);
      } catch {
        // The launch's own failure is what to report.
      }
    }
    throw err instanceof AddFailed ? err.error : err;
  }
  // A detached container outlives this process: its namespace is not held
  // (DEL is gc's once its monitor is gone).
  if (!keep) {
    closeSync(nsfd);
    nsfd = null;
  }
  let done = false;
  return {
    info: networkInfo(result, ports, target.ifname),
    abandon() {
      done = true;
      if (nsfd !== null) closeSync(nsfd);
      nsfd = null;
    },
    detach() {
      if (done) return;
      done = true;
      try {
        const failures = del(prepared.list, nsfd === null ? { ...target, netns: '' } : held(), result, ports);
        // Bridge's DEL leaves its NAT rule when it finds no address on the
        // interface (a namespace gone, an address flushed from inside).
        trace?.('network: CNI DEL of every plugin');
        removeMasquerade(id);
        if (failures.length > 0) throw failures[0]!;
        forget(recordPath(id));
        trace?.('network: CNI DEL done');
        removeBridgeIfUnused(trace);
      } finally {
        if (nsfd !== null) closeSync(nsfd);
        nsfd = null;
      }
    },
  };
}

/**
 * CNI CHECK of a running bridged container (`tsbox inspect`): each plugin
 * in order confirms that what it added is still there. `ok`, or what is
 * wrong, in one line.
 */
export async function checkNetwork(id: string, pid: number): Promise<string> {
  let r: NetworkRecord;
  try {
    r = JSON.parse(readFileSync(recordPath(id), 'utf8')) as NetworkRecord;
  } catch {
    return 'no record of its network (deleted already)';
  }
  if (r.result === null) return 'being set up';
  const target: CniTarget = { containerId: id, netns: `/proc/${pid}/ns/net`, ifname: r.ifname, cniPath: r.cniPath };
  try {
    // Not portmap's: its CHECK (containernetworking-plugins 1.1.1, Debian
    // 12's) also checks an IPv6 DNAT chain, which it never makes for a
    // container without an IPv6 address, and fails every time.
    for (const plugin of r.list.plugins.filter((p) => p.type !== 'portmap')) await runPlugin('CHECK', r.list, plugin, target, r.result, r.ports);
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The NAT rule and chain bridge's ipMasq added for container `id`. Its DEL
 * removes them only for the addresses it finds on the container's
 * interface: none once the namespace is gone (a container whose caller
 * died), or once the container flushed them itself. So they are found by
 * the comment the plugin gave them (`name: "tsbox" id: "<id>"`).
 */
function removeMasquerade(id: string): void {
  const save = spawnSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' });
  if (save.status !== 0) return;
  const comment = `name: "${BRIDGE.name}" id: "${id}"`;
  // As iptables-save prints it.
  const saved = comment.replace(/"/g, '\\"');
  const chains = new Set<string>();
  for (const line of save.stdout.split('\n')) {
    if (!line.startsWith('-A POSTROUTING ') || !line.includes(saved)) continue;
    // The rule as bridge makes it (ip.SetupIPMasq): -s IP -j CHAIN -m comment.
    const chain = / -j (CNI-[0-9a-f]+)/.exec(line)?.[1];
    const source = / -s (\S+)/.exec(line)?.[1];
    if (!chain || !source) continue;
    chains.add(chain);
    spawnSync('iptables', ['-w', '-t', 'nat', '-D', 'POSTROUTING', '-s', source, '-j', chain, '-m', 'comment', '--comment', comment]);
  }
  for (const chain of chains) {
    spawnSync('iptables', ['-w', '-t', 'nat', '-F', chain]);
    spawnSync('iptables', ['-w', '-t', 'nat', '-X', chain]);
  }
}

/** What gc does to a record's network (parameters of gcNetworks, for its tests). */
export interface GcOps {
  del: typeof del;
  removeMasquerade: (id: string) => void;
  removeEgress: (id: string) => boolean;
}

/**
 * DEL for every container whose record is left and whose monitor is gone
 * (its caller was killed, or it was detached and ended). Returns the ids
 * collected.
 *
 * An allowlist's chain and rules go first, and while any is left nothing
 * else is done and the record stays (the next gc tries again): they are
 * jumped to by the container's address, so releasing its lease first would
 * give the next container that address with another's rules on it.
 */
export function gcNetworks(dir: string = NETWORK_DIR, ops: GcOps = { del, removeMasquerade, removeEgress }, report?: (line: string) => void, mode: GcMode = {}): string[] {
  // Detached containers' allowlist keepers first (ts/network/keeper.ts): one
  // whose container is gone ends before its rules are removed below, so
  // that none of its resolver's comes after them (`mode.endProcesses: false`:
  // its network is left until it has ended). (`report`: which
  // container was killed for a keeper that was gone.)
  try {
    gcKeepers(dir, { ...hostKeeperOps, removeEgress: ops.removeEgress }, report, mode);
  } catch {
    // Best effort: each record is tried again by the next gc.
  }
  // A gc leaves the network of a container whose keeper still runs (a
  // launch's, which ends no process, or a keeper that would not end): the keeper removes its rules as it
  // ends, and none of its resolver's may come after this gc's removal.
  // (A full gc ended the keepers it could: one that would not end is left too.)
  const keeping = keepersAlive(dir);
  const names = recordNames(dir, '.json');
  const collected: string[] = [];
  for (const name of names) {
    let r: NetworkRecord;
    try {
      r = JSON.parse(readFileSync(join(dir, name), 'utf8')) as NetworkRecord;
    } catch {
      continue;
    }
    if (r.monitor.start !== '' && processStart(r.monitor.pid) === r.monitor.start) continue;
    if (keeping.has(r.id)) continue;
    // A record a launch is still writing (no monitor start time) is left a minute.
    if (r.monitor.start === '' && Date.now() - statSync(join(dir, name)).mtimeMs < 60_000) continue;
    // An allowlist's chain and rules, found by their comment.
    if (!ops.removeEgress(r.id)) continue;
    // Its namespace is gone with it: no netns (DEL then releases the lease
    // and rules without looking for the interface, which went with it).
    const failures = ops.del(r.list, { containerId: r.id, netns: '', ifname: r.ifname, cniPath: r.cniPath }, r.result, r.ports);
    ops.removeMasquerade(r.id);
    if (failures.length === 0) {
      forget(join(dir, name));
      collected.push(r.id);
    }
  }
  if (collected.length > 0 && dir === NETWORK_DIR) removeBridgeIfUnused();
  return collected;
}
