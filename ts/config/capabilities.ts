/** Capability names, and the set a container keeps from the defaults, --cap-add and --cap-drop. */
import { DEFAULT_CAPABILITIES } from './defaults.js';

/** Every capability Linux defines, by number (include/uapi/linux/capability.h). */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; `ALL` stays; anything else is undefined. */
export function normalizeCapability(name: string): string | undefined {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  return ALL_CAPABILITIES.includes(full) ? full : undefined;
}

/**
 * Docker's rule: start from the default set; `ALL` in drop empties it and in
 * add fills it; then the named adds and drops apply, drops last.
 */
export function effectiveCapabilities(add: readonly string[], drop: readonly string[]): string[] {
  const a = add.map((n) => normalizeCapability(n)!);
  const d = drop.map((n) => normalizeCapability(n)!);
  let set = new Set<string>(DEFAULT_CAPABILITIES);
  if (d.includes('ALL')) set = new Set();
  if (a.includes('ALL')) set = new Set(ALL_CAPABILITIES);
  for (const c of a) if (c !== 'ALL') set.add(c);
  for (const c of d) if (c !== 'ALL') set.delete(c);
  return ALL_CAPABILITIES.filter((c) => set.has(c));
}

/**
 * What a container with an egress allowlist may not have: CAP_NET_RAW
 * writes frames from any address (another container's, the host's
 * loopback) and CAP_NET_ADMIN rewrites its own interface, either around the
 * host's rules that hold it to its address. Its default set loses
 * CAP_NET_RAW; adding either (or ALL) is refused.
 */
export const EGRESS_REFUSED_CAPABILITIES: readonly string[] = ['CAP_NET_RAW', 'CAP_NET_ADMIN'];

/** The first name of `add` that gives an allowlisted container one of those, or null. */
export function egressRefusedCapability(add: readonly string[]): string | null {
  for (const name of add) {
    const c = normalizeCapability(name);
    if (c === 'ALL' || (c !== undefined && EGRESS_REFUSED_CAPABILITIES.includes(c))) return name;
  }
  return null;
}

/** The capabilities an allowlisted container keeps of `names`. */
export function withoutEgressRefused(names: readonly string[]): string[] {
  return names.filter((c) => !EGRESS_REFUSED_CAPABILITIES.includes(c));
}

/**
 * Network "host" without a user namespace: the container's capabilities
 * are the host's own over the host's network (sniffing every interface,
 * rewriting routes and the firewall). It keeps neither CAP_NET_RAW nor
 * CAP_NET_ADMIN then, and may not add them. (With a user namespace of its
 * own, they act on nothing of the host's: the host's netns is not its.)
 */
export function hostNetworkAsRoot(o: { userns: string; network: { mode: string } }): boolean {
  return o.userns === 'host' && o.network.mode === 'host';
}
