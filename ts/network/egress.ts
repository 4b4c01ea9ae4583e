/**
 * The egress allowlist of a bridged container (`allow`, --allow-host,
 * --allow-net): below the application, for every program.
 *
 * - A resolver for the container (ts/network/resolver.ts), in the caller's
 *   process, on the bridge's gateway (10.89.0.1) at a port of its own; the
 *   container's DNS to 10.89.0.1:53 is DNATed to it. An answer that leads
 *   to the host, its loopback, link-local or the bridge is refused unless
 *   --allow-net names that address.
 * - iptables: a chain of the container's (`TSBOX-<id12>`), jumped to from
 *   FORWARD and INPUT for its address and for its veth (the bridge port,
 *   br_netfilter's physdev), that drops any other source, accepts established traffic,
 *   DNS to its resolver, the allowed networks and resolved addresses, and
 *   refuses everything else at once: TCP with a reset, the rest with ICMP
 *   port unreachable. Each rule tsbox adds outside that chain carries the
 *   comment `tsbox:<id>`, by which gc finds them after a killed caller.
 * - Reports (ts/network/refused.ts): just before the REJECTs, an NFLOG rule
 *   (rate-limited: 20 a second after a burst of 40) logs the first bytes of
 *   each refused packet to a group of the container's own, which the
 *   addon's reader (crates/tsbox-napi/src/nflog.rs) has bound; the resolver
 *   reports the names it refuses. The kernel loads nfnetlink_log at the
 *   reader's first bind and xt_NFLOG at the rule's (both by module alias),
 *   so nothing is modprobed here. A host without them (or with no free
 *   group) keeps the allowlist, without packet reports, and says so once,
 *   in a notice; the summary says `reporting: false`.
 *
 * All of it is written with one `iptables-restore --noflush` per change.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

import type { AllowRule } from '../config/network.js';
import { TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { protocolName, Refusals } from './refused.js';
import { BRIDGE } from './cni.js';
import { forbiddenAnswer } from './dns.js';
import { startResolver } from './resolver.js';

/** tsbox's NFLOG groups: each allowlisted container binds a free one. */
export const NFLOG_FIRST = 47000;
export const NFLOG_COUNT = 1000;
/** Refused packets read at once when the reader wakes (each call reads what came since). */
const DRAIN_MAX = 256;

type Reader = InstanceType<ReturnType<typeof loadNative>['binding']['NflogReader']>;

/** The reader of a new NFLOG group (of the namespaces `ns` names, else this process's), or why there is none. */
function openReader(ns?: { user: string; net: string }): Reader | string {
  try {
    const { NflogReader } = loadNative().binding;
    return ns ? NflogReader.bindIn(ns.user, ns.net, NFLOG_FIRST, NFLOG_COUNT) : NflogReader.bind(NFLOG_FIRST, NFLOG_COUNT);
  } catch (err) {
    return (err as Error).message;
  }
}

/** An allowlist's refused-packet reports: an NFLOG group's reader counting into `refusals`, or none (`refusals.off` says why). */
export interface Reports {
  /** The group its NFLOG rule logs to; null without reports. */
  readonly group: number | null;
  /** Counts what the kernel logs, as it comes (once the rule is in place). */
  watch: () => void;
  /** Counts what was logged until now, and lets the group go. */
  close: () => void;
  /** For the trace: where refused packets go. */
  describe: () => string;
}

/**
 * The reports of an allowlist, their group bound before its rule exists (no
 * other socket can take what it logs): in the namespaces `ns` names, else
 * this process's.
 */
export function openReports(refusals: Refusals, ns?: { user: string; net: string }): Reports {
  const opened = openReader(ns);
  let reader: Reader | null = typeof opened === 'string' ? null : opened;
  if (typeof opened === 'string') refusals.off = opened;
  const drain = () => {
    if (!reader) return;
    for (const p of reader.drain(DRAIN_MAX)) {
      refusals.add({ protocol: protocolName(p.protocol), address: p.address, port: p.port ?? null, ...(p.icmpType !== undefined && p.icmpType !== null ? { icmpType: p.icmpType } : {}) });
    }
  };
  return {
    get group() {
      return reader?.group ?? null;
    },
    watch: () => reader?.watch(drain),
    close: () => {
      if (!reader) return;
      drain();
      reader.close();
      reader = null;
    },
    describe: () => (reader ? `refused packets to NFLOG group ${reader.group}` : `refused packets not reported: ${refusals.off}`),
  };
}

/**
 * Applies an allowlist's rules (`apply(group)`, with the reports' NFLOG rule
 * for `group`); when iptables refuses them with it (no xt_NFLOG), again
 * without: the allowlist without reports, said in `refusals.off`.
 */
export function applyWithReports(reports: Reports, refusals: Refusals, apply: (group: number | null) => { ok: boolean; error: string }): { ok: boolean; error: string } {
  const set = apply(reports.group);
  if (set.ok || reports.group === null) return set;
  const retried = apply(null);
  if (retried.ok) {
    refusals.off = `iptables refused the NFLOG rule (${set.error || 'no reason given'})`;
    reports.close();
  }
  return retried;
}

/** The rules that let a resolved address through in `chain` (third, after the source's and established traffic's), or take it back. */
export function addressLines(chain: string, address: string, ports: readonly (number | null)[], add: boolean): string[] {
  return ports.flatMap((p) => acceptLines(chain, `${address}/32`, p, add ? '-I' : '-D').map((l) => (add ? l.replace(`-I ${chain} `, `-I ${chain} 3 `) : l)));
}

function chainOf(id: string): string {
  return `TSBOX-${id.slice(0, 12)}`;
}

/** Runs iptables-restore --noflush on `tables` (`{ filter: [lines], nat: [lines] }`). */
function restore(tables: Record<string, string[]>): { ok: boolean; error: string } {
  const input = `${Object.entries(tables)
    .filter(([, lines]) => lines.length > 0)
    .map(([table, lines]) => `*${table}\n${lines.join('\n')}\nCOMMIT\n`)
    .join('')}`;
  const r = spawnSync('iptables-restore', ['-w', '--noflush'], { input, encoding: 'utf8' });
  return { ok: r.status === 0, error: (r.stderr || r.error?.message || '').trim() };
}

/** The rules that accept `rule`'s destination (both TCP and UDP when it names a port). */
export function acceptLines(chain: string, dest: string, port: number | null, verb = '-A'): string[] {
  if (port === null) return [`${verb} ${chain} -d ${dest} -j ACCEPT`];
  return ['tcp', 'udp'].map((p) => `${verb} ${chain} -d ${dest} -p ${p} -m ${p} --dport ${port} -j ACCEPT`);
}

/** Where the resolver asks: the first nameserver given, or the host's first one (its loopback is ours too). */
export function upstreamOf(dns: readonly string[], resolvConf = '/etc/resolv.conf', read: (p: string) => string = (p) => readFileSync(p, 'utf8')): string | null {
  if (dns.length > 0) return dns[0]!;
  try {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/m.exec(read(resolvConf));
    return m?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * The allowlist holds a container by the bridge port its packets come in
 * on, which iptables sees only when bridged traffic goes through it
 * (br_netfilter, net.bridge.bridge-nf-call-iptables = 1). Without it,
 * another container's traffic, or a forged source, would pass unseen: the
 * allowlist is refused. (The host's sysctl is the administrator's to set.)
 */
export function checkBridgeFilter(read: (p: string) => string = (p) => readFileSync(p, 'utf8')): void {
  const path = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  let value: string;
  try {
    value = read(path).trim();
  } catch {
    value = 'absent';
  }
  if (value !== '1') {
    throw new TsboxError({
      step: 'network',
      errno: 95,
      path,
      detail: `an egress allowlist needs iptables to see bridged traffic, and ${value === 'absent' ? 'br_netfilter is not loaded' : 'it is off'}`,
      hint: 'modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1 (or leave --allow-host/--allow-net out)',
    });
  }
}

/** The host's IPv4 addresses, now. */
export function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address));
}

export interface Egress {
  /** Ends the resolver and the reports' reader and removes every rule; throws the first failure. */
  close: () => void;
}

/**
 * Sets the allowlist up for the container `id` at `ip` (phase `network`,
 * after ADD): its resolver listening, its chain in place, before its
 * process runs.
 */
export async function startEgress(id: string, ip: string, veth: string, rules: readonly AllowRule[], upstream: string | null, trace?: (l: string) => void, refusals: Refusals = new Refusals()): Promise<Egress> {
  const chain = chainOf(id);
  const tag = `tsbox:${id}`;
  // Each address (with its ports) has one rule, after the source check and
  // the established traffic's rule; the resolver adds it at its first
  // answer and removes it once the last answer's TTL has run out.
  const nets = rules.flatMap((r) => (r.kind === 'net' ? [r.cidr] : []));
  const resolver = await startResolver({
    host: BRIDGE.gateway,
    // The container's queries only (DNATed, from its address): the socket
    // is on the bridge, where other containers could reach it too.
    from: ip,
    rules,
    upstream,
    refusals,
    // A name that leads to the host, its loopback, link-local or the
    // bridge is no name for it (unless --allow-net names that address).
    forbidden: (a) => forbiddenAnswer(a, BRIDGE.subnet, ownAddresses(), nets),
    open: (address, ports) => restore({ filter: addressLines(chain, address, ports, true) }).ok,
    shut: (address, ports) => restore({ filter: addressLines(chain, address, ports, false) }).ok,
    trace,
  });
  const port = resolver.port;
  const reports = openReports(refusals);
  const nflog = (group: number) => `-A ${chain} -m limit --limit 20/sec --limit-burst 40 -j NFLOG --nflog-group ${group} --nflog-size 68`;
  const filter = (group: number | null) => [
    `:${chain} - [0:0]`,
    // Its veth carries its address only: another source (another
    // container's, one it gave itself) would not be held by its rules.
    `-A ${chain} ! -s ${ip}/32 -j DROP`,
    `-A ${chain} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    `-A ${chain} -d ${BRIDGE.gateway}/32 -p udp -m udp --dport ${port} -j ACCEPT`,
    ...rules.filter((r) => r.kind === 'net').flatMap((r) => acceptLines(chain, (r as { cidr: string }).cidr, r.port)),
    ...(group === null ? [] : [nflog(group)]),
    `-A ${chain} -p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${chain} -j REJECT --reject-with icmp-port-unreachable`,
    `-I FORWARD 1 -s ${ip}/32 -m comment --comment ${tag} -j ${chain}`,
    `-I INPUT 1 -s ${ip}/32 -m comment --comment ${tag} -j ${chain}`,
    // Everything from its veth, by the bridge port it came in on
    // (br_netfilter, which checkBridgeFilter requires), whatever its source.
    `-I FORWARD 1 -m physdev --physdev-in ${veth} -m comment --comment ${tag} -j ${chain}`,
    `-I INPUT 1 -m physdev --physdev-in ${veth} -m comment --comment ${tag} -j ${chain}`,
  ];
  const nat = [`-I PREROUTING 1 -s ${ip}/32 -d ${BRIDGE.gateway}/32 -p udp -m udp --dport 53 -m comment --comment ${tag} -j DNAT --to-destination ${BRIDGE.gateway}:${port}`];
  const set = applyWithReports(reports, refusals, (group) => restore({ filter: filter(group), nat }));
  if (!set.ok) {
    reports.close();
    resolver.close();
    removeEgress(id);
    throw new TsboxError({ step: 'network', errno: 0, path: chain, detail: `iptables-restore refused the allowlist's rules: ${set.error}`, hint: 'the allowlist needs iptables with the conntrack, comment and REJECT matches' });
  }
  trace?.(`network: allowlist ${chain}, resolver ${BRIDGE.gateway}:${port} (upstream ${upstream ?? 'none'}), ${reports.describe()}`);
  reports.watch();

  let closed = false;
  return {
    close: () => {
      if (closed) return;
      closed = true;
      reports.close();
      resolver.close();
      if (!removeEgress(id)) {
        throw new TsboxError({ step: 'network', errno: 0, path: chain, detail: "iptables-restore could not remove the allowlist's chain and rules", hint: `remove the rules commented tsbox:${id} and the chain ${chain} by hand (iptables-save shows them)` });
      }
    },
  };
}

/** Removes container `id`'s chain and the rules that jump to it (by their comment); true when none is left. */
export function removeEgress(id: string): boolean {
  const chain = chainOf(id);
  const tag = `tsbox:${id}`;
  const tables: Record<string, string[]> = { filter: [], nat: [] };
  for (const table of ['filter', 'nat']) {
    const save = spawnSync('iptables-save', ['-t', table], { encoding: 'utf8' });
    // Unread rules may be there still: not removed, so its record stays for gc to try again.
    if (save.status !== 0) return false;
    for (const line of save.stdout.split('\n')) {
      // The saved rule (its comment quoted or not), with -D for -A, deletes it.
      if (line.startsWith('-A ') && (line.includes(`--comment ${tag} `) || line.includes(`--comment "${tag}"`))) tables[table]!.push(line.replace(/^-A /, '-D '));
    }
    if (table === 'filter' && save.stdout.includes(`:${chain} `)) tables.filter!.push(`-F ${chain}`, `-X ${chain}`);
  }
  if (tables.filter!.length + tables.nat!.length === 0) return true;
  return restore(tables).ok;
}
