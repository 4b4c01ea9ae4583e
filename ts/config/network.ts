/**
 * The network options' syntax (`--network`, `-p/--publish`, `--expose`), parsed inside
 * the schema. Only parsing lives here: what sets a network up is
 * ts/network/, loaded only for a container that asks for one.
 */
import { isIP } from 'node:net';

/** Docker's names: `none` (default), `host`, `bridge`, `ns:PATH`, `container:NAME`. */
export type NetworkMode = { mode: 'none' } | { mode: 'host' } | { mode: 'bridge' } | { mode: 'ns'; path: string } | { mode: 'container'; name: string };

export function parseNetwork(s: string): NetworkMode | undefined {
  if (s === 'none' || s === 'host' || s === 'bridge') return { mode: s };
  if (s.startsWith('ns:')) {
    const path = s.slice(3);
    return path.startsWith('/') && !path.includes('\0') ? { mode: 'ns', path } : undefined;
  }
  if (s.startsWith('container:')) {
    const name = s.slice('container:'.length);
    return /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(name) ? { mode: 'container', name } : undefined;
  }
  return undefined;
}

/** A published port: the host's `hostIp:hostPort` forwarded to the container's `containerPort`. */
export interface PortMapping {
  /** The host address it listens on; empty for every address. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

const port = (s: string | undefined): number | undefined => (s !== undefined && /^\d{1,5}$/.test(s) && Number(s) >= 1 && Number(s) <= 65535 ? Number(s) : undefined);

/** `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`, as Docker's -p (an IPv6 host address in brackets). */
export function parsePublish(s: string): PortMapping | undefined {
  const slash = s.lastIndexOf('/');
  const proto = slash >= 0 ? s.slice(slash + 1) : 'tcp';
  if (proto !== 'tcp' && proto !== 'udp') return undefined;
  const rest = slash >= 0 ? s.slice(0, slash) : s;
  let hostIp = '';
  let ports = rest;
  const bracket = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  if (bracket) {
    hostIp = bracket[1]!;
    ports = bracket[2]!;
    if (isIP(hostIp) !== 6) return undefined;
  } else {
    const parts = rest.split(':');
    if (parts.length === 3) {
      hostIp = parts[0]!;
      ports = `${parts[1]}:${parts[2]}`;
      if (isIP(hostIp) !== 4) return undefined;
    } else if (parts.length !== 2) {
      return undefined;
    }
  }
  const [h, c] = ports.split(':');
  const hostPort = port(h);
  const containerPort = port(c);
  if (hostPort === undefined || containerPort === undefined || ports.split(':').length !== 2) return undefined;
  return { hostIp, hostPort, containerPort, protocol: proto };
}

/** A port the container exposes (Docker's `--expose`, an image's ExposedPorts): what `publishAll` publishes. */
export interface ExposedPort {
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

/** The most ports one `--expose` range may name: each published one is a DNAT rule (or a socket of pasta's). */
export const MAX_EXPOSED_RANGE = 1024;

/** `PORT[/tcp|udp]` or `FIRST-LAST[/tcp|udp]` (Docker's --expose, and an image's ExposedPorts keys). */
export function parseExpose(s: string): ExposedPort[] | undefined {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp))?$/.exec(s);
  if (!m) return undefined;
  const first = port(m[1]);
  const last = m[2] === undefined ? first : port(m[2]);
  if (first === undefined || last === undefined || last < first || last - first >= MAX_EXPOSED_RANGE) return undefined;
  const protocol = (m[3] ?? 'tcp') as 'tcp' | 'udp';
  return Array.from({ length: last - first + 1 }, (_, i) => ({ containerPort: first + i, protocol }));
}

/**
 * One entry of an egress allowlist: a host name (its addresses as the
 * container's resolver returns them) or an IPv4 network, each on one port
 * or on every port.
 */
export type AllowRule = { kind: 'host'; name: string; port: number | null } | { kind: 'net'; cidr: string; port: number | null };

/** `NAME[:PORT]` or `A.B.C.D[/BITS][:PORT]` (--allow-host, --allow-net). */
export function parseAllow(s: string): AllowRule | undefined {
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(s);
  if (!m) return undefined;
  const what = m[1]!;
  const at = m[2] === undefined ? null : (port(m[2]) ?? -1);
  if (at === -1) return undefined;
  const net = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(what);
  if (net) {
    const bits = net[2] === undefined ? 32 : Number(net[2]);
    return isIP(net[1]!) === 4 && bits <= 32 ? { kind: 'net', cidr: `${net[1]}/${bits}`, port: at } : undefined;
  }
  const name = what.toLowerCase().replace(/\.$/, '');
  if (name.length > 253 || !/^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(name)) return undefined;
  return { kind: 'host', name, port: at };
}
