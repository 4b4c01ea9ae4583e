/**
 * An allowlisted container's resolver, in the caller's process: a UDP
 * socket that answers only the allowed names (NXDOMAIN otherwise), asking
 * the host's resolver (or --dns) for them with a query of its own
 * (ts/network/dns.ts, upstreamQuery), and lets the container reach the
 * addresses an answer gives, for their TTL, before it passes the answer on;
 * an answer that leads where a name may never lead (`forbidden`) is refused.
 *
 * How an address is let through is its network's: the host's chain of a
 * bridged container (ts/network/egress.ts), or the rules in an ordinary
 * user's container's own namespace (ts/network/egress-ns.ts).
 */
import { createSocket, type Socket } from 'node:dgram';

import type { AllowRule } from '../config/network.js';
import { addresses, nxdomain, question, upstreamQuery } from './dns.js';
import type { Refusals } from './refused.js';

/** A resolved address stays allowed at least this long, whatever its TTL. */
const MIN_TTL_S = 30;
/** ... and at most a day (a TTL of 2^31 ms or more would fire a timer at once). */
const MAX_TTL_S = 86_400;
/** A container's queries asked upstream at once, and in one second, at most. */
const MAX_IN_FLIGHT = 16;
const MAX_PER_SECOND = 100;

/** The ports a name is allowed on (null: every port), or undefined when it is not allowed. */
export function portsOf(rules: readonly AllowRule[], name: string): (number | null)[] | undefined {
  const ports = rules.filter((r) => r.kind === 'host' && r.name === name).map((r) => r.port);
  if (ports.length === 0) return undefined;
  return ports.includes(null) ? [null] : [...new Set(ports)];
}

export interface ResolverOptions {
  /** The address it listens on (its port is the kernel's choice). */
  host: string;
  /** The only source address its queries are taken from. */
  from: string;
  rules: readonly AllowRule[];
  /** The server it asks; null: every name is NXDOMAIN. */
  upstream: string | null;
  /** The server's port (53). */
  upstreamPort?: number;
  refusals: Refusals;
  /** Whether a name may never lead to `address`. */
  forbidden: (address: string) => boolean;
  /** Lets the container reach `address` on `ports`; false when that failed (the answer is still passed on, and reaches nothing). */
  open: (address: string, ports: (number | null)[]) => boolean;
  /** Takes back what `open` let through, once its TTL has run out; false when that failed (tried again). */
  shut: (address: string, ports: (number | null)[]) => boolean;
  trace?: (l: string) => void;
}

export interface Resolver {
  port: number;
  /** Stops answering and forgets the addresses (their rules are the caller's to remove). */
  close: () => void;
}

/** Starts the resolver; it answers from now on. */
export async function startResolver(o: ResolverOptions): Promise<Resolver> {
  const sock: Socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, o.host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  sock.unref();
  const { refusals, trace } = o;

  // Each address (with its ports) is opened at its first answer and shut
  // once the last answer's TTL has run out: a container asking again and
  // again (or a flood of queries) opens nothing for an address it has
  // already.
  const allowed = new Map<string, NodeJS.Timeout>();
  let closed = false;
  const allow = (address: string, ports: (number | null)[], ttl: number) => {
    const key = `${address} ${ports.join(',')}`;
    const had = allowed.get(key);
    if (had) clearTimeout(had);
    else if (!o.open(address, ports)) return;
    const t = setTimeout(() => {
      allowed.delete(key);
      // Tried again when it fails (a fork refused, a lock held): an address left open would stay open while the container runs.
      for (let i = 0; i < 3 && !closed && !o.shut(address, ports); i++) trace?.(`network: closing ${address} failed; trying again`);
    }, Math.min(Math.max(ttl, MIN_TTL_S), MAX_TTL_S) * 1000);
    t.unref();
    allowed.set(key, t);
  };
  // Queries asked of the upstream server at once, and in the current
  // second: beyond either, a query is dropped (the container's resolver
  // asks again), which bounds the sockets and the work a container causes.
  let inFlight = 0;
  // The `done` of each query asked upstream and not answered yet.
  const asking = new Set<() => void>();
  let second = 0;
  let thisSecond = 0;
  // Whatever a container sends, it must not end the caller (this process):
  // a throw in an event handler would.
  sock.on('message', (msg, from) => {
    try {
      answer(msg, from);
    } catch (err) {
      trace?.(`network: resolver dropped a query: ${(err as Error).message}`);
    }
  });
  const answer = (msg: Buffer, from: { address: string; port: number }) => {
    if (from.address !== o.from) return;
    const q = question(msg);
    const ports = q ? portsOf(o.rules, q.name) : undefined;
    const asked = upstreamQuery(msg);
    if (!q || !ports || o.upstream === null || !asked) {
      // A name that is not allowed is a refusal to report (a query that
      // is no query, or no upstream to ask, is not).
      if (q && !ports) refusals.add({ protocol: 'dns', address: null, port: null, name: q.name });
      const nx = nxdomain(msg);
      if (nx) sock.send(nx, from.port, from.address);
      return;
    }
    // A connected socket: the kernel takes answers from the upstream server
    // only, so no one else can slip addresses into the allowlist; the
    // answer must also be to this query (its id and name).
    const now = Math.floor(Date.now() / 1000);
    if (now !== second) {
      second = now;
      thisSecond = 0;
    }
    if (inFlight >= MAX_IN_FLIGHT || thisSecond >= MAX_PER_SECOND) return;
    inFlight += 1;
    thisSecond += 1;
    // The upstream query has an id of its own, random, not the container's:
    // a spoofed answer must guess it as well as the socket's port.
    const id = globalThis.crypto.getRandomValues(new Uint16Array(1))[0]!;
    asked.writeUInt16BE(id, 0);
    const up = createSocket('udp4');
    let over = false;
    const done = () => {
      if (over) return;
      over = true;
      inFlight -= 1;
      asking.delete(done);
      clearTimeout(timeout);
      up.close();
    };
    asking.add(done);
    const timeout = setTimeout(done, 5000);
    up.on('error', done);
    up.on('message', (reply) => {
      try {
        // An answer (QR), to this query: its id, its name and its type.
        const rq = reply.length >= 12 ? question(reply) : null;
        if (!rq || reply.readUInt16BE(0) !== id || (reply[2]! & 0x80) === 0 || rq.name !== q.name || rq.type !== q.type) return;
        done();
        // The container hears it with its own query's id.
        reply = Buffer.from(reply);
        reply.writeUInt16BE(msg.readUInt16BE(0), 0);
        const found = addresses(reply);
        const refused = found.find((a) => o.forbidden(a.address));
        if (refused) {
          trace?.(`network: resolver refused ${q.name} -> ${refused.address}`);
          if (!closed) refusals.add({ protocol: 'dns', address: refused.address, port: null, name: q.name });
          const nx = nxdomain(msg);
          if (nx && !closed) sock.send(nx, from.port, from.address);
          return;
        }
        // The addresses are let through before the container hears them.
        for (const a of found) allow(a.address, ports, a.ttl);
        if (!closed) sock.send(reply, from.port, from.address);
      } catch (err) {
        trace?.(`network: resolver dropped an answer: ${(err as Error).message}`);
      }
    });
    up.connect(o.upstreamPort ?? 53, o.upstream, () => {
      if (!over) up.send(asked);
    });
  };
  return {
    port: sock.address().port,
    close: () => {
      if (closed) return;
      closed = true;
      for (const t of allowed.values()) clearTimeout(t);
      // Queries still asked upstream end here: no socket outlives the
      // resolver, and no late answer lets an address through.
      for (const end of [...asking]) end();
      sock.close();
    },
  };
}
