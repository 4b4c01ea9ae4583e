/**
 * The few parts of a DNS message (RFC 1035) the egress resolver reads and
 * writes: the question of a query, the query it asks upstream instead, an
 * NXDOMAIN answer to it, the IPv4 addresses (with their TTLs) of an answer,
 * and which of those a container may never be let through to by a name.
 */

/** The first question of a query: its name (lower case, no final dot) and type. */
export function question(msg: Buffer): { name: string; type: number } | null {
  if (msg.length < 12 || msg.readUInt16BE(4) < 1) return null;
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    if (at >= msg.length) return null;
    const len = msg[at]!;
    if (len === 0) break;
    // A query's question is never compressed.
    if (len > 63 || at + 1 + len > msg.length) return null;
    labels.push(msg.toString('latin1', at + 1, at + 1 + len).toLowerCase());
    at += 1 + len;
  }
  if (at + 5 > msg.length) return null;
  return { name: labels.join('.'), type: msg.readUInt16BE(at + 1) };
}

/**
 * The answer "no such name" to `query`: its id and question, QR, RA, RCODE
 * 3, no records. Null for what is not a query (shorter than a header, or an
 * answer itself): that gets no answer at all.
 */
export function nxdomain(query: Buffer): Buffer | null {
  if (query.length < 12 || (query[2]! & 0x80) !== 0) return null;
  const q = question(query);
  // Header and the first question only.
  let end = 12;
  if (q) {
    while (query[end] !== 0) end += 1 + query[end]!;
    end += 5;
  }
  const out = Buffer.from(query.subarray(0, end));
  // QR=1, opcode and RD as asked; RA=1, RCODE=3.
  out[2] = 0x80 | (query[2]! & 0x79);
  out[3] = 0x80 | 3;
  out.writeUInt16BE(q ? 1 : 0, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

/** Skips a (possibly compressed) name at `at`; the offset after it. */
function skipName(msg: Buffer, at: number): number {
  for (;;) {
    if (at >= msg.length) throw new Error('truncated name');
    const len = msg[at]!;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2;
    at += 1 + len;
  }
}

/** The A records of an answer: address and TTL (seconds). Empty for anything malformed. */
export function addresses(msg: Buffer): { address: string; ttl: number }[] {
  try {
    if (msg.length < 12) return [];
    const qd = msg.readUInt16BE(4);
    const an = msg.readUInt16BE(6);
    let at = 12;
    for (let i = 0; i < qd; i++) at = skipName(msg, at) + 4;
    const out: { address: string; ttl: number }[] = [];
    for (let i = 0; i < an; i++) {
      at = skipName(msg, at);
      const type = msg.readUInt16BE(at);
      const cls = msg.readUInt16BE(at + 2);
      const ttl = msg.readUInt32BE(at + 4);
      const len = msg.readUInt16BE(at + 8);
      at += 10;
      if (at + len > msg.length) return out;
      if (type === 1 && cls === 1 && len === 4) out.push({ address: [...msg.subarray(at, at + 4)].join('.'), ttl });
      at += len;
    }
    return out;
  } catch {
    return [];
  }
}

/**
 * The query the resolver asks upstream for a container's `query`: built
 * anew from its id, its RD bit and its one question (name, type, class IN),
 * nothing else of it (no other opcode, question, record or option passes
 * through). Null for anything else: a response, an opcode other than
 * QUERY, not exactly one question, another class.
 */
export function upstreamQuery(query: Buffer): Buffer | null {
  if (query.length < 12 || (query[2]! & 0xf8) !== 0 || query.readUInt16BE(4) !== 1) return null;
  const q = question(query);
  if (!q) return null;
  let end = 12;
  while (query[end] !== 0) end += 1 + query[end]!;
  if (query.readUInt16BE(end + 3) !== 1) return null;
  const labels = q.name === '' ? [] : q.name.split('.');
  const out = Buffer.alloc(12 + labels.reduce((n, l) => n + 1 + l.length, 0) + 5);
  query.copy(out, 0, 0, 2);
  // QR=0, opcode QUERY, RD as asked.
  out[2] = query[2]! & 0x01;
  out.writeUInt16BE(1, 4);
  let at = 12;
  for (const l of labels) {
    out[at] = l.length;
    out.write(l, at + 1, 'latin1');
    at += 1 + l.length;
  }
  out[at] = 0;
  out.writeUInt16BE(q.type, at + 1);
  out.writeUInt16BE(1, at + 3);
  return out;
}

function toInt(address: string): number {
  return address.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** Whether IPv4 `address` is in `cidr` (A.B.C.D/BITS, or an address alone). */
export function inCidr(address: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split('/');
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  if (bits === 0) return true;
  const mask = 2 ** 32 - 2 ** (32 - bits);
  return (toInt(address) & mask) >>> 0 === (toInt(net!) & mask) >>> 0;
}

/**
 * Where a name may lead only when --allow-net names the address itself: the
 * host's loopback, link-local (cloud metadata services), the unspecified
 * network, and every network that is not the internet's: the private ones
 * (a LAN, other bridges), shared address space (a carrier's NAT, some
 * clouds' internal networks), multicast and the reserved range with the
 * broadcast address. An allowlisted name is a name on the internet; its
 * DNS, which someone else may run, must not open the way to the host's
 * neighbours (DNS rebinding).
 */
const NOT_THE_INTERNET = ['127.0.0.0/8', '169.254.0.0/16', '0.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '224.0.0.0/4', '240.0.0.0/4'];

/**
 * What a name may never resolve to for an allowlisted container, unless its
 * --allow-net names the address: NOT_THE_INTERNET, the host's own addresses
 * (`own`), and the bridge's subnet (the host's gateway and the other
 * containers), so that an upstream answer cannot open the way to the host
 * or its neighbours.
 */
export function forbiddenAnswer(address: string, subnet: string, own: readonly string[], allowedNets: readonly string[]): boolean {
  if (allowedNets.some((c) => inCidr(address, c))) return false;
  return [...NOT_THE_INTERNET, subnet].some((c) => inCidr(address, c)) || own.includes(address);
}
