/**
 * Registry authentication: the `WWW-Authenticate` challenge (RFC 7235) of a
 * registry's 401, and the credentials Docker and podman keep
 * (`~/.docker/config.json`, `$XDG_RUNTIME_DIR/containers/auth.json`).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { DOCKER_HUB } from './reference.js';

export interface Challenge {
  /** `bearer`, `basic`, lowercased. */
  scheme: string;
  /** Its parameters, names lowercased: realm, service, scope. */
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header: one or more challenges, each a scheme and
 * comma-separated `name=value` or `name="quoted, \"value\""` parameters.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skip = (re: RegExp) => {
    while (i < s.length && re.test(s[i]!)) i++;
  };
  while (i < s.length) {
    skip(/[\s,]/);
    const start = i;
    skip(/[^\s,=]/);
    const word = s.slice(start, i);
    if (!word) break;
    skip(/\s/);
    if (s[i] === '=' && out.length > 0) {
      // A parameter of the current challenge.
      i++;
      skip(/\s/);
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        const v = i;
        skip(/[^\s,]/);
        value = s.slice(v, i);
      }
      out[out.length - 1]!.params[word.toLowerCase()] = value;
    } else {
      out.push({ scheme: word.toLowerCase(), params: {} });
    }
  }
  return out;
}

/** A user name and password for a registry. */
export interface Credentials {
  username: string;
  password: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string } | undefined>;
}

/** The files looked in, in order (podman's first, as podman does). */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(join(env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker'), 'config.json'));
  return files;
}

/** The keys a registry's entry may have in an auth file. */
function keysFor(domain: string): string[] {
  if (domain === DOCKER_HUB) return ['docker.io', 'index.docker.io', 'https://index.docker.io/v1/', 'registry-1.docker.io'];
  return [domain, `https://${domain}`, `http://${domain}`, `https://${domain}/v1/`, `https://${domain}/v2/`];
}

/** Credentials for `domain` from the first auth file that has them; null for anonymous. */
export function credentialsFor(domain: string, files: readonly string[] = authFiles()): Credentials | null {
  for (const file of files) {
    let parsed: AuthFile;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8')) as AuthFile;
    } catch {
      continue; // Absent or unreadable: the next one.
    }
    const auths = parsed?.auths;
    if (typeof auths !== 'object' || auths === null) continue;
    for (const key of keysFor(domain)) {
      const e = auths[key];
      if (!e) continue;
      if (typeof e.auth === 'string' && e.auth) {
        const text = Buffer.from(e.auth, 'base64').toString('utf8');
        const colon = text.indexOf(':');
        if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
      }
      if (typeof e.username === 'string' && typeof e.password === 'string') return { username: e.username, password: e.password };
    }
  }
  return null;
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
