/**
 * A client of the OCI distribution API (registry HTTP API v2): the `/v2/`
 * probe and its auth challenge, manifests by tag or digest, and blobs, each
 * verified against its digest while it streams. Plain node:http(s), so that
 * an insecure registry's certificate check can be turned off for it alone.
 */
import type { Hash } from 'node:crypto';
import { createWriteStream, statSync, createReadStream, truncateSync } from 'node:fs';
import { createRequire } from 'node:module';
import type http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

import { printable, TsboxError } from '../errors.js';
import { basicHeader, credentialsFor, parseChallenges, type Credentials } from './auth.js';
import { isLoopback, registryHost } from './reference.js';
import { INDEX_TYPES, MANIFEST_TYPES, MAX_DOCUMENT } from './spec.js';

export interface RegistryOptions {
  /** Hosts (`host[:port]`) that may be reached over plain http or with an unverified certificate. */
  insecure?: readonly string[];
  /** Credentials instead of those of the auth files. */
  credentials?: Credentials | null;
}

interface Response {
  /** The URL that answered, after redirects. */
  url: URL;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

const MAX_REDIRECTS = 5;

/**
 * node:http, node:https and node:crypto, loaded on the first request: the
 * library's bundle would otherwise load them for every rootfs container too.
 */
function builtins() {
  // require, not import(): the CLI's CommonJS bundle has no dynamic import of builtins.
  const require = createRequire(import.meta.url);
  return {
    http: require('node:http') as typeof import('node:http'),
    https: require('node:https') as typeof import('node:https'),
    createHash: (require('node:crypto') as typeof import('node:crypto')).createHash,
  };
}
let loaded: ReturnType<typeof builtins> | undefined;
/** A new sha256 hash (node:crypto loaded on first use). */
export const sha256 = (): Hash => (loaded ??= builtins()).createHash('sha256');

/**
 * Whether credentials meant for `origin` may go with a request to `url`: the
 * same scheme, host and port (a redirect to a CDN, or from https down to
 * http on the same host, loses them).
 */
export function sameOrigin(url: string | URL, origin: string | URL): boolean {
  return new URL(url).origin === new URL(origin).origin;
}

/**
 * Whether the registry's Basic credentials may go to the token realm its
 * challenge names, the challenge having come from `registry` (the URL the
 * `/v2/` probe reached): between loopback addresses, always (a local test
 * registry); otherwise only when both the challenge and the realm are
 * https, whatever the realm's host (Docker Hub's is auth.docker.io). A
 * challenge over plain http may be anyone's on the way, and so may its
 * realm; a realm over plain http would carry them in the clear. Otherwise
 * the token is asked for without them.
 */
export function realmGetsCredentials(realm: URL, registry: URL): boolean {
  if (isLoopback(registry.host) && isLoopback(realm.host)) return true;
  return registry.protocol === 'https:' && realm.protocol === 'https:';
}

/** One registry, for one repository's pulls (the bearer token's scope). */
export class Registry {
  readonly domain: string;
  readonly repository: string;
  private readonly host: string;
  private readonly insecure: boolean;
  /** The registry's own host and port as https URLs write them: the only one whose certificate an insecure registry leaves unchecked. */
  private readonly ownTlsHost: string | null;
  private base: string | null = null;
  private authorization: string | null = null;
  private readonly credentials: Credentials | null;

  constructor(domain: string, repository: string, options: RegistryOptions = {}) {
    this.domain = domain;
    this.repository = repository;
    this.host = registryHost(domain);
    this.insecure = isLoopback(domain) || (options.insecure ?? []).includes(domain);
    this.ownTlsHost = URL.canParse(`https://${this.host}`) ? new URL(`https://${this.host}`).host : null;
    this.credentials = options.credentials !== undefined ? options.credentials : credentialsFor(domain);
  }

  private fail(errno: number, path: string, detail: string, hint: string | null = null, cause?: unknown): TsboxError {
    return new TsboxError({ step: 'registry', errno, path, detail, hint }, cause === undefined ? undefined : { cause });
  }

  /**
   * One request, following redirects. An Authorization header goes only to
   * `authOrigin` (scheme, host and port: the registry's own, or its token
   * realm's), and is dropped for good at the first redirect elsewhere; a
   * redirect from https to plain http is refused unless the registry is
   * insecure. An insecure registry's certificate goes unchecked on its own
   * host only: its token realm's, or a redirect's elsewhere, is checked.
   */
  private request(url: string, headers: Record<string, string>, authOrigin: string | null, method = 'GET', redirects = 0): Promise<Response> {
    const { http, https } = (loaded ??= builtins());
    return new Promise((resolveP, rejectP) => {
      const u = new URL(url);
      const mod = u.protocol === 'http:' ? http : https;
      const h: Record<string, string> = { 'user-agent': 'tsbox', ...headers };
      if (authOrigin === null || !sameOrigin(u, authOrigin)) delete h.authorization;
      const unchecked = u.protocol === 'https:' && this.insecure && u.host === this.ownTlsHost;
      const req = mod.request(u, { method, headers: h, timeout: 30_000, ...(unchecked ? { rejectUnauthorized: false } : {}) }, (res) => {
        const status = res.statusCode ?? 0;
        if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
          res.resume();
          if (redirects >= MAX_REDIRECTS) return rejectP(this.fail(0, url, 'too many redirects'));
          const next = new URL(res.headers.location, u);
          if (u.protocol === 'https:' && next.protocol !== 'https:' && !this.insecure) {
            return rejectP(this.fail(0, url, `the registry redirected to ${next.origin}, away from https`, 'refused: a registry reached over https is followed only over https'));
          }
          this.request(next.toString(), h, authOrigin, method, redirects + 1).then(resolveP, rejectP);
          return;
        }
        resolveP({ url: u, status, headers: res.headers, body: res });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out after 30 s'), { code: 'ETIMEDOUT', errno: -110 })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // getaddrinfo's failures carry libuv's own numbers (-3008), not errnos.
        const errno = typeof err.errno === 'number' && Math.abs(err.errno) < 512 ? Math.abs(err.errno) : 0;
        rejectP(this.fail(errno, url, `${method} ${url}: ${err.message}`, this.insecure ? null : `if ${this.domain} is a local registry without TLS, pass --insecure-registry ${this.domain}`, err));
      });
      req.end();
    });
  }

  /**
   * Finds the scheme (https, or http for an insecure registry that does not
   * speak TLS) and the authorization the `/v2/` probe's challenge asks for.
   */
  async connect(): Promise<void> {
    if (this.base !== null) return;
    const schemes = this.insecure ? ['https', 'http'] : ['https'];
    let probe: Response | undefined;
    let lastErr: unknown;
    for (const scheme of schemes) {
      this.base = `${scheme}://${this.host}`;
      try {
        probe = await this.request(`${this.base}/v2/`, {}, null);
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    if (!probe) {
      this.base = null;
      throw lastErr;
    }
    probe.body.resume();
    if (probe.status === 200) return;
    if (probe.status !== 401) throw this.fail(0, `${this.base}/v2/`, `the registry answered ${probe.status} to /v2/`, 'is this a registry (OCI distribution API v2)?');
    await this.authorize(String(probe.headers['www-authenticate'] ?? ''), probe.url);
  }

  /** Answers the challenge `header` that `from` (the probe's URL, after redirects) sent. */
  private async authorize(header: string, from: URL): Promise<void> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      const realm = bearer.params.realm;
      if (!realm) throw this.fail(0, this.domain, 'the registry asked for a bearer token without a realm');
      let u: URL;
      try {
        u = new URL(realm);
      } catch {
        throw this.fail(0, this.domain, `the registry's token realm is not a URL: ${printable(realm, 200)}`);
      }
      if (u.protocol !== 'https:' && !(u.protocol === 'http:' && this.insecure)) throw this.fail(0, printable(realm, 200), 'the token realm is not https', null);
      if (bearer.params.service) u.searchParams.set('service', bearer.params.service);
      u.searchParams.set('scope', `repository:${this.repository}:pull`);
      const send = this.credentials !== null && realmGetsCredentials(u, from);
      const headers: Record<string, string> = send ? { authorization: basicHeader(this.credentials) } : {};
      const res = await this.request(u.toString(), headers, send ? u.origin : null);
      const body = await readLimited(res.body, 1 << 20, u.toString());
      if (res.status !== 200) {
        const why = from.protocol !== 'https:' ? `the registry's challenge came over plain http` : `the token realm is plain http on ${u.host}`;
        const hint = this.credentials && !send
          ? `the credentials were not sent: ${why}, and tsbox sends credentials over http only between loopback addresses; serve the registry and its token service over https`
          : this.credentials
            ? 'check the credentials in your auth file'
            : 'log in first: the image may be private (credentials are read from ~/.docker/config.json or $XDG_RUNTIME_DIR/containers/auth.json)';
        throw this.fail(13, u.toString(), `the token service answered ${res.status}`, hint);
      }
      let token: unknown;
      try {
        const json = JSON.parse(body.toString('utf8')) as { token?: unknown; access_token?: unknown };
        token = json.token ?? json.access_token;
      } catch {
        token = undefined;
      }
      if (typeof token !== 'string' || token.length === 0 || token.length > 65536) throw this.fail(0, u.toString(), 'the token service sent no token');
      this.authorization = `Bearer ${token}`;
      return;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (!this.credentials) throw this.fail(13, this.domain, 'the registry asks for a user name and password', 'add them to ~/.docker/config.json or $XDG_RUNTIME_DIR/containers/auth.json (docker login / podman login)');
      // Both where the challenge came from and where the header will go (the registry's own URLs).
      const plain = (url: URL) => url.protocol !== 'https:' && !isLoopback(url.host);
      if (plain(from) || plain(new URL(this.base!))) {
        throw this.fail(13, this.domain, 'the registry asks for a user name and password over plain http', 'refused: tsbox sends credentials over http only to a loopback address; serve the registry over https');
      }
      this.authorization = basicHeader(this.credentials);
      return;
    }
    throw this.fail(0, this.domain, `the registry asks for an authentication tsbox does not speak: ${printable(header, 200) || '(none)'}`);
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.authorization ? { authorization: this.authorization, ...extra } : extra;
  }

  /** A manifest or index by tag or digest: its bytes, media type and digest (verified when asked by digest). */
  async manifest(reference: string): Promise<{ bytes: Buffer; mediaType: string | undefined; digest: string }> {
    await this.connect();
    const url = `${this.base}/v2/${this.repository}/manifests/${reference}`;
    const res = await this.request(url, this.headers({ accept: [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ') }), this.base);
    if (res.status !== 200) {
      res.body.resume();
      throw this.fail(res.status === 404 ? 2 : 0, `${this.domain}/${this.repository}:${reference}`, res.status === 404 ? 'the image is not in the registry (manifest unknown)' : `the registry answered ${res.status} for the manifest`, res.status === 404 ? 'check the name and the tag' : null);
    }
    const bytes = await readLimited(res.body, MAX_DOCUMENT, url);
    const digest = `sha256:${sha256().update(bytes).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new TsboxError({ step: 'verify', errno: 0, path: url, detail: `the manifest's digest is ${digest}, not ${reference}`, hint: 'the registry sent something else than was asked for: it is refused' });
    }
    const ct = res.headers['content-type'];
    let mediaType = typeof ct === 'string' ? ct.split(';')[0]!.trim() : undefined;
    if (!mediaType || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
      try {
        mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType;
      } catch {
        // parseDocument says what is wrong with it.
      }
    }
    return { bytes, mediaType, digest };
  }

  /** A small blob (a config) in memory, verified. */
  async blobBytes(digest: string, size: number): Promise<Buffer> {
    if (size > MAX_DOCUMENT) throw this.fail(27, digest, `the config claims ${size} bytes (at most ${MAX_DOCUMENT})`);
    await this.connect();
    const url = `${this.base}/v2/${this.repository}/blobs/${digest}`;
    const res = await this.request(url, this.headers(), this.base);
    if (res.status !== 200) {
      res.body.resume();
      throw this.fail(0, url, `the registry answered ${res.status} for the blob`);
    }
    const bytes = await readLimited(res.body, MAX_DOCUMENT, url);
    verify(sha256().update(bytes), digest, url);
    return bytes;
  }

  /**
   * Downloads a blob to `file`, resuming a partial one (a Range request from
   * where it stopped; the part already there is hashed first), verifying the
   * digest and the size as it streams. `onBytes` sees each chunk's length.
   */
  async blobToFile(digest: string, size: number, file: string, onBytes: (n: number) => void): Promise<void> {
    await this.connect();
    const url = `${this.base}/v2/${this.repository}/blobs/${digest}`;
    const hash = sha256();
    let have: number;
    try {
      have = statSync(file).size;
    } catch {
      have = 0;
    }
    // What is there already, when it can be the start of this blob, counts.
    if (have > size) have = 0;
    if (have > 0) {
      await pipeline(createReadStream(file, { end: have - 1 }), new Transform({ transform: (c: Buffer, _e, cb) => (hash.update(c), cb()) }));
      onBytes(have);
    }
    // Whole already (a pull stopped before its unpacking): it is checked as it is.
    if (have === size && size > 0) return verify(hash, digest, file);
    const res = await this.request(url, this.headers(have > 0 ? { range: `bytes=${have}-` } : {}), this.base);
    // A registry that sends it whole, or from elsewhere than asked: start over.
    const from = Number(/^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''))?.[1]);
    if (have > 0 && (res.status === 200 || (res.status === 206 && from !== have))) {
      if (res.status === 206) {
        res.body.resume();
        truncateSync(file);
        return this.blobToFile(digest, size, file, onBytes);
      }
      return this.restart(digest, size, file, onBytes, res);
    }
    if (res.status !== 200 && res.status !== 206) {
      res.body.resume();
      throw this.fail(res.status === 404 ? 2 : 0, url, `the registry answered ${res.status} for the blob`);
    }
    await this.stream(res, hash, have, digest, size, file, onBytes, url);
  }

  private async restart(digest: string, size: number, file: string, onBytes: (n: number) => void, res: Response): Promise<void> {
    const url = `${this.base}/v2/${this.repository}/blobs/${digest}`;
    await this.stream(res, sha256(), 0, digest, size, file, onBytes, url);
  }

  private async stream(res: Response, hash: Hash, have: number, digest: string, size: number, file: string, onBytes: (n: number) => void, url: string): Promise<void> {
    let total = have;
    const check = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        total += chunk.length;
        if (total > size) return cb(new TsboxError({ step: 'verify', errno: 27, path: url, detail: `the blob is longer than the ${size} bytes its manifest says`, hint: 'the registry sent something else than was asked for: it is refused' }));
        hash.update(chunk);
        onBytes(chunk.length);
        cb(null, chunk);
      },
    });
    await pipeline(res.body, check, createWriteStream(file, { flags: have > 0 ? 'a' : 'w', mode: 0o600 }));
    if (total !== size) throw this.fail(0, url, `the download stopped at ${total} of ${size} bytes`, 'run the pull again: it resumes');
    verify(hash, digest, url);
  }
}

function verify(hash: Hash, digest: string, where: string): void {
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== digest) {
    throw new TsboxError({ step: 'verify', errno: 0, path: where, detail: `the content's digest is ${got}, not ${digest}`, hint: 'the registry sent something else than was asked for: it is refused' });
  }
}

/** Reads a response body into memory, refusing more than `max` bytes. */
export async function readLimited(body: NodeJS.ReadableStream, max: number, where: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) {
      (body as http.IncomingMessage).destroy?.();
      throw new TsboxError({ step: 'registry', errno: 27, path: where, detail: `the document is larger than ${max} bytes`, hint: 'a manifest, index or config this large is refused' });
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}
