/**
 * Image references, read with Docker's short-name rules (distribution's
 * `reference.ParseNormalizedNamed`): `alpine` is `docker.io/library/alpine:latest`;
 * a first component with a `.` or a `:`, or `localhost`, is a registry host;
 * `name@sha256:<hex>` pins a manifest by digest.
 */
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

/** Loopback hosts, which may speak plain http (podman's rule for localhost). */
export function isLoopback(domain: string): boolean {
  const host = domain.startsWith('[') ? domain.slice(1, domain.indexOf(']')) : domain.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Whether `s` is a digest tsbox can store (`sha256:<64 hex>`). */
export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}
