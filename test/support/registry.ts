/**
 * A real registry on loopback for the image tests (Debian's docker-registry,
 * the CNCF distribution registry), test images built with umoci and pushed
 * with skopeo, and a small tar writer for layers no tool would make.
 * Nothing here talks to anything but 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { runCommand } from './tsbox.js';

export interface TestRegistry {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Where it keeps its blobs (docker/registry/v2/...). */
  storage: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts docker-registry on a free loopback port, its storage in a temporary directory. */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'tsbox-test-registry-'));
  const storage = join(dir, 'storage');
  mkdirSync(storage);
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(dir, 'config.yml');
  writeFileSync(config, ['version: 0.1', 'log:', '  level: error', 'storage:', '  filesystem:', `    rootdirectory: ${storage}`, 'http:', `  addr: ${host}`, ''].join('\n'));
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.on('error', (err) => (stderr += String(err)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (i > 100 || child.exitCode !== null) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start on ${host}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    storage,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a tool; throws with its output when it fails. */
export async function tool(file: string, args: string[]): Promise<string> {
  const r = await runCommand(file, args, { killAfterMs: 60_000 });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Copies the OCI layout `layout:tag` to the registry as `name` (a repository:tag). */
export async function push(layout: string, tag: string, registry: TestRegistry, name: string): Promise<string> {
  await tool('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${registry.host}/${name}`]);
  return `${registry.host}/${name}`;
}

export interface TarEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'link' | 'char';
  data?: string | Buffer;
  link?: string;
  mode?: number;
  major?: number;
  minor?: number;
  /** A size given in a PAX header (over 8 GiB), with no data after it: a bomb's claim. */
  paxSize?: number;
}

/** A ustar archive of `entries`, names taken as they are (`..`, absolute paths and all). */
export function tarOf(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    if (e.paxSize !== undefined) {
      // "<length> size=<n>\n", the length counting itself.
      const body = ` size=${e.paxSize}\n`;
      let len = body.length + 2;
      while (`${len}${body}`.length !== len) len++;
      const record = `${len}${body}`;
      blocks.push(tarOf([{ name: 'PaxHeaders/x', type: 'file', data: record }]).subarray(0, 512 + Math.ceil(record.length / 512) * 512));
      // The type flag of that header is 'x' (a PAX extended header).
      blocks[blocks.length - 1]!.write('x', 156, 1);
      const h = blocks[blocks.length - 1]!.subarray(0, 512);
      h.write('        ', 148, 8);
      let sum = 0;
      for (const b of h) sum += b;
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
      blocks.push(tarOf([{ name: e.name, type: 'file' }]).subarray(0, 512));
      continue;
    }
    const data = typeof e.data === 'string' || e.data === undefined ? Buffer.from(e.data ?? '') : e.data;
    const h = Buffer.alloc(512);
    const put = (s: string, off: number, len: number) => h.write(s, off, len, 'utf8');
    const octal = (n: number, off: number, len: number) => put(`${n.toString(8).padStart(len - 1, '0')}\0`, off, len);
    put(e.name, 0, 100);
    octal(e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 100, 8);
    octal(0, 108, 8);
    octal(0, 116, 8);
    octal(e.type === 'file' ? data.length : 0, 124, 12);
    octal(1_700_000_000, 136, 12);
    put({ file: '0', link: '1', symlink: '2', char: '3', dir: '5' }[e.type], 156, 1);
    put(e.link ?? '', 157, 100);
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    octal(e.major ?? 0, 329, 8);
    octal(e.minor ?? 0, 337, 8);
    put('        ', 148, 8);
    let sum = 0;
    for (const b of h) sum += b;
    put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(h);
    if (e.type === 'file') blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Writes an OCI image layout with one image `tag` whose layers are the
 * given tars (gzipped), bottom first: for layers umoci would not make.
 */
export function writeLayout(dir: string, tag: string, tars: readonly Buffer[], cmd: string[] = ['sh']): void {
  const m = writeManifest(dir, tars, cmd, HOST_ARCH);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...m, annotations: { 'org.opencontainers.image.ref.name': tag } }] }));
}

/** The OCI name of this machine's architecture. */
export const HOST_ARCH = { x64: 'amd64', arm64: 'arm64' }[process.arch as 'x64'];

/** An OCI layout whose `tag` is an image index of one image per architecture (a multi-platform image). */
export function writeIndexLayout(dir: string, tag: string, images: readonly { arch: string; tars: Buffer[]; cmd: string[] }[]): void {
  const manifests = images.map((i) => ({ ...writeManifest(dir, i.tars, i.cmd, i.arch), platform: { os: 'linux', architecture: i.arch } }));
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  const d = sha(index);
  writeFileSync(join(dir, 'blobs', 'sha256', d.slice(7)), index);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: d, size: index.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }));
}

/** Writes the layers, config and manifest of one image into the layout; returns the manifest's descriptor. */
function writeManifest(dir: string, tars: readonly Buffer[], cmd: string[], arch: string | undefined): { mediaType: string; digest: string; size: number } {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const blob = (b: Buffer) => {
    const d = sha(b);
    writeFileSync(join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return d;
  };
  const layers = tars.map((t) => {
    const gz = gzipSync(t);
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blob(gz), size: gz.length };
  });
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: cmd }, rootfs: { type: 'layers', diff_ids: tars.map(sha) } }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blob(config), size: config.length }, layers }));
  return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: blob(manifest), size: manifest.length };
}

export interface AuthProxy {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** The Range headers of the blob requests it saw. */
  ranges: string[];
  /** With `cut: 'stall'`: the digest of the first blob whose download stalled halfway. */
  stalled: Promise<string>;
  stop(): Promise<void>;
}

/**
 * A token-auth front of `registry`, as Docker Hub's is: /v2/ answers 401
 * with a Bearer challenge whose realm (/token here) hands out a token for
 * `user:password` (HTTP basic auth); requests with the token are passed to
 * the registry. With `cut`, the first whole download of each blob larger
 * than a few kB stops in the middle: `'once'` breaks the connection there,
 * `'stall'` holds it open and sends nothing more (for the puller to be
 * killed), both for a pull to resume.
 */
export async function startAuthProxy(registry: TestRegistry, user: string, password: string, cutMode: 'none' | 'once' | 'stall' = 'none'): Promise<AuthProxy> {
  const http = await import('node:http');
  const token = `token-${process.pid}`;
  const ranges: string[] = [];
  const cut = new Set<string>();
  let onStall: (digest: string) => void = () => {};
  const stalled = new Promise<string>((resolve) => (onStall = resolve));
  const server = http.createServer((req, res) => {
    const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
    const url = new URL(req.url ?? '/', `http://${host}`);
    if (url.pathname === '/token') {
      const ok = req.headers.authorization === `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? JSON.stringify({ token }) : '{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="tsbox-test"`, 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const blob = url.pathname.includes('/blobs/');
    if (blob) ranges.push(req.headers.range ?? '');
    const headers = { ...req.headers, host: registry.host };
    delete headers.authorization;
    const upstream = http.request(`http://${registry.host}${req.url}`, { method: req.method, headers }, (up) => {
      const size = Number(up.headers['content-length'] ?? 0);
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (cutMode !== 'none' && blob && !req.headers.range && size > 4096 && !cut.has(url.pathname)) {
        cut.add(url.pathname);
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          if (sent >= size / 2) return;
          const part = chunk.subarray(0, Math.max(0, Math.ceil(size / 2) - sent));
          sent += part.length;
          res.write(part);
          if (sent >= size / 2) {
            up.destroy();
            if (cutMode === 'once') res.socket?.destroy();
            else onStall(url.pathname.slice(url.pathname.lastIndexOf('/') + 1));
          }
        });
        return;
      }
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    ranges,
    stalled,
    stop: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
