/**
 * The egress allowlist of an ordinary user's bridged container (pasta,
 * ts/network/pasta.ts): the policy of ts/network/egress.ts, held inside the
 * container's own network namespace, since nothing on the host is this
 * user's to change.
 *
 * - The container's network namespace is owned by its user namespace, which
 *   this user made: entered through it (`nsenter --user --net`, this
 *   process's descriptors of both, so a reused pid cannot stand in), this
 *   user is capable there, and the rules go in its OUTPUT chain (the
 *   container's traffic starts there): loopback and established traffic
 *   accepted, the allowed networks and resolved addresses accepted,
 *   everything else refused at once (TCP with a reset, the rest with ICMP
 *   port unreachable), IPv6 all refused but loopback. The container's
 *   processes keep neither CAP_NET_ADMIN nor CAP_NET_RAW (ts/runtime/plan.ts,
 *   withoutEgressRefused; exec's too), so they can neither change the rules
 *   nor send around them; the rules go with the namespace.
 * - The resolver (ts/network/resolver.ts) listens on the host's 127.0.0.1;
 *   pasta forwards the container's 127.0.0.1:53 (UDP) to it and nothing
 *   else of the host's loopback (`-U 53:PORT`, ts/network/pasta.ts), and the
 *   container's resolv.conf names 127.0.0.1 only. Its queries reach it from
 *   pasta's socket, on 127.0.0.1.
 * - Reports: the NFLOG rule logs to a group of the container's namespace
 *   (each namespace has its own), bound by a reader made there
 *   (NflogReader.bindIn, crates/tsbox-core/src/nssocket.rs).
 *
 * Each change is one `iptables-restore --noflush` run in the namespace.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readlinkSync } from 'node:fs';

import type { AllowRule } from '../config/network.js';
import { TsboxError } from '../errors.js';
import { forbiddenAnswer } from './dns.js';
import { acceptLines, addressLines, applyWithReports, type Egress, openReports, ownAddresses } from './egress.js';
import { startResolver } from './resolver.js';
import { Refusals } from './refused.js';

/** Where the container asks for names: its own loopback, which pasta forwards to the resolver. */
export const NS_RESOLVER = '127.0.0.1';

/** The rules set up in the namespace at the start, as iptables-restore input (IPv4, then IPv6). */
export function nsRules(rules: readonly AllowRule[], nflogGroup: number | null): { v4: string; v6: string } {
  const v4 = [
    '*filter',
    // What no rule accepts is dropped (each is refused below before that).
    ':OUTPUT DROP [0:0]',
    // Its own loopback, pasta's forward of port 53 to the resolver among it.
    '-A OUTPUT -o lo -j ACCEPT',
    '-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    ...rules.flatMap((r) => (r.kind === 'net' ? acceptLines('OUTPUT', r.cidr, r.port) : [])),
    ...(nflogGroup === null ? [] : [`-A OUTPUT -m limit --limit 20/sec --limit-burst 40 -j NFLOG --nflog-group ${nflogGroup} --nflog-size 68`]),
    '-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset',
    '-A OUTPUT -j REJECT --reject-with icmp-port-unreachable',
    'COMMIT',
  ];
  const v6 = ['*filter', ':OUTPUT DROP [0:0]', '-A OUTPUT -o lo -j ACCEPT', '-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset', '-A OUTPUT -j REJECT --reject-with icmp6-port-unreachable', 'COMMIT'];
  return { v4: `${v4.join('\n')}\n`, v6: `${v6.join('\n')}\n` };
}

/** The rules that let a resolved address through (after loopback and established traffic), or take it back. */
export function addressRules(address: string, ports: readonly (number | null)[], add: boolean): string {
  return `*filter\n${addressLines('OUTPUT', address, ports, add).join('\n')}\nCOMMIT\n`;
}

/** A container's user and network namespaces, as descriptors of this process (a keeper's, ts/network/keeper.ts). */
export interface NsDescriptors {
  user: number;
  net: number;
}

/**
 * Throws unless `fds` are what they say: a user and a network namespace
 * (inherited descriptors, checked before anything enters them).
 */
export function checkNsDescriptors(fds: NsDescriptors, link: (fd: number) => string = (fd) => readlinkSync(`/proc/self/fd/${fd}`)): void {
  for (const [ns, fd] of [['user', fds.user], ['net', fds.net]] as const) {
    let target: string;
    try {
      target = link(fd);
    } catch {
      throw new Error(`descriptor ${fd} is not open`);
    }
    if (!new RegExp(`^${ns}:\\[\\d+\\]$`).test(target)) throw new Error(`descriptor ${fd} is ${target}, not a ${ns} namespace`);
  }
}

/**
 * Sets the allowlist up in the namespaces of the container's process
 * `target` (a pid; a keeper's: the descriptors of them it was handed)
 * (phase `network`, before pasta starts and before its process runs):
 * returns the resolver's port, for pasta to forward to, and the undo.
 */
export async function startNsEgress(target: number | NsDescriptors, rules: readonly AllowRule[], upstream: string | null, trace?: (l: string) => void, refusals: Refusals = new Refusals()): Promise<Egress & { port: number }> {
  // Held from now on: every change enters these, whatever becomes of the pid
  // (a keeper's, handed over by the launch, are its own to close too).
  const held: number[] = typeof target === 'number' ? [] : [target.user, target.net];
  const where = typeof target === 'number' ? `/proc/${target}/ns` : '/proc/self/fd';
  const undo: (() => void)[] = [() => held.forEach((fd) => closeSync(fd))];
  const unwind = () => {
    for (const u of undo.splice(0).reverse()) {
      try {
        u();
      } catch {
        // The rest is undone all the same.
      }
    }
  };
  try {
    if (typeof target === 'number') for (const ns of ['user', 'net']) held.push(openSync(`/proc/${target}/ns/${ns}`, 'r'));
    else checkNsDescriptors(target);
  } catch (err) {
    unwind();
    throw new TsboxError({ step: 'network', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 3), path: where, detail: `the container's namespaces could not be opened for its allowlist${typeof target === 'number' ? '' : `: ${(err as Error).message}`}`, hint: 'the container ended while its network was set up' });
  }
  const [userFd, netFd] = held as [number, number];
  const restore = (cmd: 'iptables-restore' | 'ip6tables-restore', input: string) => {
    // Its descriptors 3 and 4 are the namespaces; --preserve-credentials:
    // this user (root in the container's namespace, where it maps to 0) as
    // it is, since setgroups is denied in a namespace it mapped alone.
    const r = spawnSync('nsenter', ['--user=/proc/self/fd/3', '--net=/proc/self/fd/4', '--preserve-credentials', cmd, '-w', '--noflush'], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe', userFd, netFd] });
    return { ok: r.status === 0, error: (r.stderr || r.error?.message || '').trim() };
  };

  const nets = rules.flatMap((r) => (r.kind === 'net' ? [r.cidr] : []));
  let resolver;
  try {
    resolver = await startResolver({
      host: NS_RESOLVER,
      // pasta's socket on the host's loopback, which carries the container's queries.
      from: NS_RESOLVER,
      rules,
      upstream,
      refusals,
      // The container has the host's addresses (pasta's): a name that leads
      // to them, the loopback or link-local is no name for it. (No bridge
      // of its own: the loopback stands for that subnet.)
      forbidden: (a) => forbiddenAnswer(a, '127.0.0.0/8', ownAddresses(), nets),
      open: (address, ports) => restore('iptables-restore', addressRules(address, ports, true)).ok,
      shut: (address, ports) => restore('iptables-restore', addressRules(address, ports, false)).ok,
      trace,
    });
  } catch (err) {
    unwind();
    throw err;
  }
  undo.push(resolver.close);

  const reports = openReports(refusals, { user: `/proc/self/fd/${userFd}`, net: `/proc/self/fd/${netFd}` });
  undo.push(reports.close);

  let set = applyWithReports(reports, refusals, (group) => restore('iptables-restore', nsRules(rules, group).v4));
  if (set.ok) set = restore('ip6tables-restore', nsRules(rules, null).v6);
  if (!set.ok) {
    unwind();
    throw new TsboxError({ step: 'network', errno: 0, path: typeof target === 'number' ? `/proc/${target}/ns/net` : `/proc/self/fd/${netFd}`, detail: `iptables-restore refused the allowlist's rules in the container's namespace: ${set.error}`, hint: 'the allowlist needs nsenter, and iptables with the conntrack and REJECT matches; its user namespace must map this user' });
  }
  trace?.(`network: allowlist in the container's namespace, resolver ${NS_RESOLVER}:${resolver.port} (upstream ${upstream ?? 'none'}), ${reports.describe()}`);
  reports.watch();
  return {
    port: resolver.port,
    // Its rules go with the namespace: what is left is this process's.
    close: unwind,
  };
}
