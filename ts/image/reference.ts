/**
 * Image references, read with Docker's short-name rules (distribution's
 * `reference.ParseNormalizedNamed`): `alpine` is `docker.io/library/alpine:latest`;
 * a first component with a `.` or a `:`, or `localhost`, is a registry host;
 * `name@sha256:<hex>` pins a manifest by digest.
 */
import { isIP } from 'node:net';

import { TsboxError } from '../errors.js';

export interface Reference {
  /** The registry's host (and port) as written: `docker.io`, `127.0.0.1:5000`. */
  domain: string;
  /** The repository inside it: `library/alpine`. */
  repository: string;
  /** The tag, when no digest pins it (`latest` by default). */
  tag: string | null;
  /** `sha256:<hex>`, when given. */
  digest: string | null;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/;

export const DOCKER_HUB = 'docker.io';

function bad(ref: string, detail: string): TsboxError {
  return new TsboxError({ step: 'image_reference', errno: 0, path: ref, detail, hint: 'write NAME[:TAG] or NAME@sha256:DIGEST, e.g. alpine:3.20 or localhost:5000/app:1' });
}

/** Parses `ref` with Docker's rules; a TsboxError (step `image_reference`) names what is wrong. */
export function parseReference(ref: string): Reference {
  if (ref.length === 0 || ref.length > 4096) throw bad(ref, ref.length === 0 ? 'the image reference is empty' : 'the image reference is too long');
  let rest = ref;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(ref, `"${digest}" is not a sha256 digest (sha256: and 64 lowercase hex digits)`);
  }
  let tag: string | null = null;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, `"${tag}" is not a valid tag`);
  }
  const first = rest.indexOf('/');
  let domain = DOCKER_HUB;
  let repository = rest;
  if (first >= 0) {
    const head = rest.slice(0, first);
    if (head.includes('.') || head.includes(':') || head === 'localhost' || head !== head.toLowerCase()) {
      domain = head;
      repository = rest.slice(first + 1);
    }
  }
  if (domain === 'index.docker.io') domain = DOCKER_HUB;
  if (!DOMAIN.test(domain)) throw bad(ref, `"${domain}" is not a registry host`);
  if (domain === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  for (const c of repository.split('/')) {
    if (!COMPONENT.test(c)) {
      throw bad(ref, c !== c.toLowerCase() ? `"${c}": repository names must be lowercase` : `"${c}" is not a valid repository name component`);
    }
  }
  if (repository.length > 255) throw bad(ref, 'the repository name is longer than 255 characters');
  if (digest === null && tag === null) tag = 'latest';
  return { domain, repository, tag, digest };
}

/** The full name: `docker.io/library/alpine:latest`, `host/repo@sha256:...`. */
export function formatReference(r: Reference): string {
  return `${r.domain}/${r.repository}${r.tag !== null ? `:${r.tag}` : ''}${r.digest !== null ? `@${r.digest}` : ''}`;
}

/** The host to talk to: Docker Hub's API lives on registry-1.docker.io. */
export function registryHost(domain: string): string {
  return domain === DOCKER_HUB ? 'registry-1.docker.io' : domain;
}

/**
 * Whether `domain` (`host[:port]`) is this machine's loopback, which may
 * speak plain http (podman's rule for localhost) and be sent credentials
 * over it: `localhost`, 127.0.0.0/8 however it is spelt (`127.1`, `0x7f.1`,
 * `2130706433`), `::1` (`[0:0:0:0:0:0:0:1]`) and ::ffff:127.x.y.z. The host
 * is read by Node's URL parser, as the requests read it: what is judged is
 * where they go, not how it was written.
 */
export function isLoopback(domain: string): boolean {
  let host: string;
  try {
    host = new URL(`http://${domain}`).hostname;
  } catch {
    return false;
  }
  if (host === 'localhost') return true;
  const ip = host.startsWith('[') ? host.slice(1, -1) : host;
  if (isIP(ip) === 4) return ip.startsWith('127.');
  if (isIP(ip) !== 6) return false;
  // The parser writes an IPv6 address short and in hex: ::1, ::ffff:7f00:1.
  const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(ip);
  return ip === '::1' || (mapped !== null && parseInt(mapped[1]!, 16) >> 8 === 127);
}

/** Whether `s` is a digest tsbox can store (`sha256:<64 hex>`). */
export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}
