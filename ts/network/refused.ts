/**
 * What an egress allowlist refused (ts/network/egress.ts): each refused
 * packet its chain logged (NFLOG, rate-limited by the kernel) and each name
 * its resolver would not give, as an event for the Container's 'refused'
 * listeners, and counted into a bounded summary for the result and
 * `--report`. Memory is bounded whatever the container sends: a fixed number
 * of distinct destinations is kept, the rest only counted, and events are
 * passed on at a bounded rate.
 */

/** One refused connection, or name. */
export interface RefusedConnection {
  /** `tcp`, `udp`, `icmp`, `dns` (a name its resolver refused), or `ip:N` for another IP protocol. */
  protocol: string;
  /** The destination; for `dns`, the address a name led to that was refused, or null when the name itself is not allowed. */
  address: string | null;
  /** The TCP or UDP destination port; null otherwise. */
  port: number | null;
  /** For `dns`: the name asked. */
  name?: string;
  /** For `icmp`: the message type (8: echo request). */
  icmpType?: number;
}

/** The bounded summary of what an allowlist refused, in the result's `network.refused`. */
export interface RefusedSummary {
  /** Every refusal reported (the kernel logs at most 20 a second, after a burst of 40). */
  total: number;
  /** The first distinct destinations, with how often each was refused. */
  destinations: (RefusedConnection & { count: number })[];
  /** Refusals of destinations beyond those listed. */
  others: number;
  /** Whether refused packets were reported at all (false: the host has no NFLOG; see the notice). */
  reporting: boolean;
}

/** Distinct destinations kept in a summary. */
export const MAX_DESTINATIONS = 32;
/** Events passed on per second, and at once after a quiet spell (as the kernel's limit). */
const RATE = 20;
const BURST = 40;

function keyOf(r: RefusedConnection): string {
  return `${r.protocol} ${r.address ?? ''} ${r.port ?? ''} ${r.name ?? ''} ${r.icmpType ?? ''}`;
}

export class Refusals {
  /** Why refused packets are not reported (no NFLOG on this host), or null. */
  off: string | null = null;
  #total = 0;
  #others = 0;
  readonly #seen = new Map<string, RefusedConnection & { count: number }>();
  readonly #listeners: ((r: RefusedConnection) => void)[] = [];
  /** Passed on before anyone listened (the process can start before its Container exists): kept for the first listener, a burst's worth. */
  readonly #backlog: RefusedConnection[] = [];
  #tokens = BURST;
  #refilled: number;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#refilled = now();
  }

  /** Counts `r` and passes it on to the listeners, within the rate. */
  add(r: RefusedConnection): void {
    this.#total += 1;
    const key = keyOf(r);
    const seen = this.#seen.get(key);
    if (seen) seen.count += 1;
    else if (this.#seen.size < MAX_DESTINATIONS) this.#seen.set(key, { ...r, count: 1 });
    else this.#others += 1;
    const now = this.#now();
    this.#tokens = Math.min(BURST, this.#tokens + ((now - this.#refilled) * RATE) / 1000);
    this.#refilled = now;
    if (this.#tokens < 1) return;
    this.#tokens -= 1;
    if (this.#listeners.length === 0) {
      if (this.#backlog.length < BURST) this.#backlog.push({ ...r });
      return;
    }
    for (const l of this.#listeners) Refusals.#call(l, r);
  }

  static #call(l: (r: RefusedConnection) => void, r: RefusedConnection): void {
    try {
      l({ ...r });
    } catch {
      // A listener's throw is its own: the caller's process goes on.
    }
  }

  /** Calls `fn` with each refusal passed on from now, the first listener with those passed on before it too. */
  listen(fn: (r: RefusedConnection) => void): void {
    this.#listeners.push(fn);
    for (const r of this.#backlog.splice(0)) Refusals.#call(fn, r);
  }

  summary(): RefusedSummary {
    return { total: this.#total, destinations: [...this.#seen.values()].map((d) => ({ ...d })), others: this.#others, reporting: this.off === null };
  }
}

/** The protocol's name as a refusal gives it. */
export function protocolName(n: number): string {
  return n === 6 ? 'tcp' : n === 17 ? 'udp' : n === 1 ? 'icmp' : `ip:${n}`;
}
