/**
 * Images (issue 18), against a real registry on loopback (docker-registry),
 * with images built by umoci and pushed by skopeo, and layers written by hand
 * where no tool would make them (hostile ones). The store is a temporary
 * directory (TSBOX_STORAGE); nothing reaches a registry off this machine.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, lchownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { createPool, pull, run } from '../../ts/index.js';
import { loadNative } from '../../ts/native.js';
import { HOST_ARCH, push, startAuthProxy, startRegistry, tarOf, tool, writeIndexLayout, writeLayout, type TestRegistry } from '../support/registry.js';
import { cniChains, removeCniChains, throwawayUser } from '../support/host.js';
import { BIN, cli, eventually, runCommand, type CliOptions } from '../support/tsbox.js';
import { parseRunInput } from '../../ts/config/schema.js';
import { imageRun } from '../../ts/image/run.js';
import { WAITING_FOR_LAUNCH } from '../../ts/image/manage.js';
import { Store } from '../../ts/image/store.js';
import { launch } from '../../ts/runtime/launch.js';
import { gzipSync } from 'node:zlib';
import { fromNativeReport } from '../../ts/errors.js';

const rootfs = inject('rootfs');

let registry: TestRegistry;
let work: string;
let storage: string;
let layout: string;
const refs = { busybox: '', two: '', tampered: '', hostile: '', hardlink: '', multi: '', stopper: '', opaque: '' };
const savedStorage = process.env.TSBOX_STORAGE;

const tsbox = (args: string[], opts: CliOptions = {}) => cli(args, { env: { ...process.env, TSBOX_STORAGE: storage }, killAfterMs: 60_000, ...opts });
const layerDirs = () => readdirSync(join(storage, 'layers', 'sha256')).filter((n) => !n.endsWith('.json'));
const layerDir = (digest: string) => join(storage, 'layers', 'sha256', digest.slice(7));

interface Listed {
  name: string;
  digest: string;
  layers: string[];
  size: number;
}
async function listed(): Promise<Listed[]> {
  const r = await tsbox(['images', '--format', 'json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
}
const byName = async (ref: string) => (await listed()).find((i) => i.name === `${ref}`);

/** The digest of the top layer of `tag` in the OCI layout. */
function topLayer(tag: string): string {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const m = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag)!;
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', m.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.at(-1)!.digest;
}

beforeAll(async () => {
  // Never skipped: without the tools the suite fails, saying what it needs.
  for (const t of ['docker-registry', 'skopeo', 'umoci']) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) throw new Error(`the image suite needs ${t} (Debian's docker-registry, skopeo and umoci; .ci/run installs them)`);
  }
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'tsbox-test-images-'));
  storage = join(work, 'store');
  process.env.TSBOX_STORAGE = storage;
  layout = join(work, 'layout');
  await tool('umoci', ['init', '--layout', layout]);
  await tool('umoci', ['new', '--image', `${layout}:empty`]);
  // base: the busybox test rootfs, with a file the next layer deletes.
  const b1 = join(work, 'b1');
  await tool('umoci', ['unpack', '--image', `${layout}:empty`, b1]);
  cpSync(rootfs, join(b1, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(b1, 'rootfs', 'etc', 'msg'), 'hello from layer one\n');
  writeFileSync(join(b1, 'rootfs', 'etc', 'doomed'), 'doomed\n');
  await tool('umoci', ['repack', '--image', `${layout}:base`, b1]);
  await tool('umoci', ['config', '--image', `${layout}:base`, '--config.cmd', 'sh', '--config.cmd', '-c', '--config.cmd', 'cat /etc/msg; echo FOO=$FOO; pwd', '--config.env', 'FOO=fromimage', '--config.workingdir', '/tmp']);
  // two: base plus a layer that deletes /etc/doomed (a whiteout) and changes /etc/msg.
  const b2 = join(work, 'b2');
  await tool('umoci', ['unpack', '--image', `${layout}:base`, b2]);
  rmSync(join(b2, 'rootfs', 'etc', 'doomed'));
  writeFileSync(join(b2, 'rootfs', 'etc', 'msg'), 'hello from layer two\n');
  await tool('umoci', ['repack', '--image', `${layout}:two`, b2]);
  // tampered: base plus a layer of its own, whose blob the test damages in the registry.
  const b3 = join(work, 'b3');
  await tool('umoci', ['unpack', '--image', `${layout}:base`, b3]);
  writeFileSync(join(b3, 'rootfs', 'etc', 'tampered'), 'x'.repeat(4096));
  await tool('umoci', ['repack', '--image', `${layout}:tampered`, b3]);
  // stopper: an image whose StopSignal is SIGUSR1, and whose command says which signal ended it.
  await tool('umoci', ['config', '--image', `${layout}:base`, '--tag', 'stopper', '--config.stopsignal', 'SIGUSR1', '--clear', 'config.cmd', '--config.cmd', 'sh', '--config.cmd', '-c', '--config.cmd', 'trap "echo got USR1; exit 0" USR1; trap "echo got USR2; exit 0" USR2; trap "echo got TERM; exit 0" TERM; echo up; while :; do sleep 0.1; done']);
  refs.busybox = await push(layout, 'base', registry, 'busybox:1');
  refs.stopper = await push(layout, 'stopper', registry, 'stopper:1');
  refs.two = await push(layout, 'two', registry, 'twolayer:1');
  refs.tampered = await push(layout, 'tampered', registry, 'tampered:1');
}, 180_000);

afterAll(async () => {
  if (savedStorage === undefined) delete process.env.TSBOX_STORAGE;
  else process.env.TSBOX_STORAGE = savedStorage;
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('tsbox pull and tsbox run IMAGE', () => {
  it('pulls an image and runs it with its config: Cmd, Env, WorkingDir, each overridable', async () => {
    const p = await tsbox(['pull', refs.busybox]);
    expect(p.stderr).toMatch(/: done \(/);
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(new RegExp(`^${refs.busybox.replace(/[.]/g, '\\.')}\\nsha256:[a-f0-9]{64}\\n$`));
    const r = await tsbox(['run', refs.busybox]);
    expect(r).toMatchObject({ code: 0, stdout: 'hello from layer one\nFOO=fromimage\n/tmp\n' });
    const o = await tsbox(['run', '-e', 'FOO=over', '-w', '/', refs.busybox]);
    expect(o).toMatchObject({ code: 0, stdout: 'hello from layer one\nFOO=over\n/\n' });
    const e = await tsbox(['run', '--entrypoint', 'echo', refs.busybox, 'replaced']);
    expect(e).toMatchObject({ code: 0, stdout: 'replaced\n' });
    const c = await tsbox(['run', refs.busybox, 'id', '-u']);
    expect(c).toMatchObject({ code: 0, stdout: '0\n' });
    // By digest: the manifest is checked against it, and the name keeps it.
    const digest = p.stdout.split('\n')[1]!;
    const byDigest = `${refs.busybox.replace(/:1$/, '')}@${digest}`;
    expect(await tsbox(['pull', '-q', byDigest])).toMatchObject({ code: 0, stdout: `${digest}\n` });
    expect(await tsbox(['run', byDigest, 'cat', '/etc/msg'])).toMatchObject({ code: 0, stdout: 'hello from layer one\n' });
    expect(await tsbox(['rmi', byDigest])).toMatchObject({ code: 0, stdout: `${byDigest}\n` });
    const wrong = `${refs.busybox.replace(/:1$/, '')}@sha256:${'0'.repeat(64)}`;
    const missing = await tsbox(['pull', '-q', wrong]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toMatch(/^tsbox: registry\(.*\): ENOENT — the image is not in the registry \(manifest unknown\); check the name and the tag\n$/);
  });

  it("tsbox stop sends the image's StopSignal; --stop-signal overrides it", async () => {
    for (const [flags, expected] of [[[], 'got USR1'], [['--stop-signal', 'USR2'], 'got USR2']] as const) {
      const name = `tsbox-img-stop-${process.pid}-${flags.length}`;
      const d = await tsbox(['run', '-q', '-d', '--name', name, ...flags, refs.stopper]);
      expect(d.code, d.stderr).toBe(0);
      try {
        for (let i = 0; i < 100 && !(await tsbox(['logs', name])).stdout.includes('up'); i++) await new Promise((r) => setTimeout(r, 50));
        expect(await tsbox(['stop', '-t', '20', name])).toMatchObject({ code: 0 });
        expect((await tsbox(['logs', name])).stdout).toBe(`up\n${expected}\n`);
      } finally {
        await tsbox(['rm', '-f', name]);
      }
    }
  });

  it('on a terminal, a pull draws a line per layer in place, with a bar and bytes', async () => {
    const store = join(work, 'store-tty');
    try {
      const line = `TSBOX_STORAGE=${store} ${process.execPath} ${BIN} pull ${refs.two}`;
      const r = await runCommand('script', ['-qec', line, '/dev/null'], { keepStdinOpen: true, killAfterMs: 60_000 });
      expect(r.code).toBe(0);
      // Redrawn in place (cursor up, erase line), one line per layer, ending done.
      expect(r.stdout).toMatch(/\x1b\[2A/);
      expect(r.stdout).toMatch(/\x1b\[2K[0-9a-f]{12}: downloading +\[[= ]+\] [\d.]+ [kM]?B\/[\d.]+ [kM]?B [\d.]+ [kM]?B\/s/);
      const last = r.stdout.slice(r.stdout.lastIndexOf('\x1b[2A'));
      expect(last.match(/: done /g)).toHaveLength(2);
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  });

  it('runs an image from the API, and pull() reports progress', async () => {
    const seen: string[] = [];
    const record = await pull(refs.busybox, { onProgress: (p) => seen.push(p.phase) });
    expect(record.layers).toHaveLength(1);
    // Already stored: nothing is downloaded again.
    expect(seen).toEqual(['resolved', 'exists']);
    const r = await run([], { image: refs.busybox, env: { FOO: 'api' } });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'hello from layer one\nFOO=api\n/tmp\n' });
    await expect(run(['true'], { image: refs.busybox, rootfs })).rejects.toThrow(/config\(image\): cannot be combined with rootfs/);
  });

  it("run() pulls a missing image with the caller's progress, after refusing bad options first", async () => {
    const store = join(work, 'store-api-pull');
    process.env.TSBOX_STORAGE = store;
    try {
      const early: string[] = [];
      await expect(run(['true'], { image: refs.busybox, memory: 'lots', pulling: { onProgress: (p) => early.push(p.phase) } })).rejects.toMatchObject({ step: 'config', path: 'memory' });
      // Refused before anything was asked of the registry.
      expect(early).toEqual([]);
      expect(existsSync(join(store, 'images.json'))).toBe(false);
      const seen: string[] = [];
      const r = await run(['cat', '/etc/msg'], { image: refs.busybox, pulling: { onProgress: (p) => seen.push(p.phase) } });
      expect(r).toMatchObject({ exitCode: 0, stdout: 'hello from layer one\n' });
      expect(seen[0]).toBe('resolved');
      expect(seen).toContain('download');
      expect(seen.at(-1)).toBe('done');
    } finally {
      process.env.TSBOX_STORAGE = storage;
      rmSync(store, { recursive: true, force: true });
    }
  });

  it('tsbox run pulls an image the store lacks, or has only part of, with its progress; a bad option is refused before the pull', async () => {
    const store = join(work, 'store-cli-pull');
    const as = (args: string[]) => cli(args, { env: { ...process.env, TSBOX_STORAGE: store }, killAfterMs: 60_000 });
    try {
      const bad = await as(['run', '--hostname', 'a b!', refs.busybox, 'true']);
      expect(bad).toMatchObject({ code: 125, stdout: '' });
      expect(bad.stderr).toBe('tsbox: config(--hostname a b!): must be letters, digits, hyphens and dots, starting and ending with a letter or digit\n');
      // Nothing was asked of the registry, nothing stored.
      expect(existsSync(join(store, 'images.json'))).toBe(false);
      const r = await as(['run', refs.busybox, 'cat', '/etc/msg']);
      expect(r).toMatchObject({ code: 0, stdout: 'hello from layer one\n' });
      expect(r.stderr).toMatch(/: done \(/);
      // A layer gone (its description, which marks it complete, removed): --pull never refuses it, the default pulls it again.
      const described = readdirSync(join(store, 'layers', 'sha256')).filter((n) => n.endsWith('.json'));
      expect(described).toHaveLength(1);
      rmSync(join(store, 'layers', 'sha256', described[0]!));
      const never = await as(['run', '--pull', 'never', refs.busybox, 'true']);
      expect(never.code).toBe(125);
      expect(never.stderr).toContain(`ENOENT — the image is in the store, but its layer sha256:${described[0]!.slice(0, -'.json'.length)} is not`);
      const again = await as(['run', refs.busybox, 'cat', '/etc/msg']);
      expect(again).toMatchObject({ code: 0, stdout: 'hello from layer one\n' });
      expect(again.stderr).toMatch(/: done \(/);
      // In the store: found by the launch, nothing pulled or shown.
      expect(await as(['run', refs.busybox, 'cat', '/etc/msg'])).toMatchObject({ code: 0, stdout: 'hello from layer one\n', stderr: '' });
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  });

  it("an unknown --pull is refused even for an image in the store; --pull always names the flag it refuses; a failed pull leaves --report's file as it was", async () => {
    expect((await tsbox(['pull', '-q', refs.busybox])).code).toBe(0);
    const sometimes = await tsbox(['run', '--pull', 'sometimes', refs.busybox, 'true']);
    expect(sometimes).toMatchObject({ code: 125, stdout: '', stderr: 'tsbox: config(--pull sometimes): unknown pull policy; use --pull missing (the default), always or never\n' });
    const always = await tsbox(['run', '--pull', 'always', '--hostname', 'a b!', refs.busybox, 'true']);
    expect(always).toMatchObject({ code: 125, stderr: 'tsbox: config(--hostname a b!): must be letters, digits, hyphens and dots, starting and ending with a letter or digit\n' });
    // An image the store lacks, from a registry that is not there: the pull fails.
    const kept = join(work, 'report-kept.json');
    const earlier = `an earlier report, longer than the next${'.'.repeat(10_000)}\n`;
    writeFileSync(kept, earlier);
    const made = join(work, 'report-new.json');
    for (const [file, left] of [[kept, earlier], [made, null]] as const) {
      const r = await tsbox(['run', '--report', file, '127.0.0.1:1/absent:1', 'true']);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/^tsbox: registry\(.*\): ECONNREFUSED/);
      expect(existsSync(file) ? readFileSync(file, 'utf8') : null).toBe(left);
    }
    // A container that ran replaces the earlier report whole.
    expect((await tsbox(['run', '--report', kept, refs.busybox, 'true'])).code).toBe(0);
    expect(JSON.parse(readFileSync(kept, 'utf8'))).toMatchObject({ exitCode: 0 });
  });

  it('Ctrl-C while tsbox run waits for the store (an image prune holds it) ends it before any pull, not its container after one', async () => {
    const store = join(work, 'store-cli-signal');
    new Store(store);
    // An exclusive hold on the store's lock, as `tsbox image prune` takes it: the launch's look-up waits.
    const held = loadNative().binding.tryLockFile(join(store, 'locks', 'store'), `${process.pid}\n`)!;
    let released = false;
    try {
      // A registry that is not there: a pull would fail with ECONNREFUSED (status 125) instead.
      const r = await cli(['run', '127.0.0.1:1/absent:1', 'true'], {
        env: { ...process.env, TSBOX_STORAGE: store },
        killAfterMs: 30_000,
        onSpawn: (child) => {
          void (async () => {
            // Once it catches SIGQUIT (Node does not by default), its handlers are in: it is
            // about to wait for the store, or waits. A SIGINT now is one it holds.
            const catches = () => {
              try {
                const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
                return mask !== undefined && (BigInt(`0x${mask}`) & (1n << 2n)) !== 0n;
              } catch {
                return false;
              }
            };
            expect(await eventually(catches, 20_000)).toBe(true);
            await new Promise((resolve) => setTimeout(resolve, 300));
            child.kill('SIGINT');
            await new Promise((resolve) => setTimeout(resolve, 200));
            held.release();
            released = true;
          })();
        },
      });
      expect(r).toMatchObject({ code: null, signal: 'SIGINT', stdout: '' });
      expect(r.stderr).toBe('');
      expect(existsSync(join(store, 'images.json'))).toBe(false);
    } finally {
      if (!released) held.release();
      rmSync(store, { recursive: true, force: true });
    }
  });

  it('an image found once in a process is looked up again when the index changes', async () => {
    const { ensureImage } = await import('../../ts/image/run.js');
    const s = new Store(storage);
    const one = await ensureImage(refs.busybox, 'never', { store: s });
    expect(await ensureImage(refs.busybox, 'never', { store: s })).toEqual(one);
    // Another image tagged with its name: the next look-up sees it, not the one it remembered.
    await tsbox(['pull', '-q', refs.two]);
    const two = (await byName(refs.two))!;
    await s.tag({ ...two, name: one.name });
    try {
      expect((await ensureImage(refs.busybox, 'never', { store: s })).digest).toBe(two.digest);
    } finally {
      await s.tag(one);
    }
    expect((await ensureImage(refs.busybox, 'never', { store: s })).digest).toBe(one.digest);
  });

  it("writes go to the container's own layer: the image's layer is never changed", async () => {
    const before = (await byName(refs.busybox))!;
    const w = await tsbox(['run', refs.busybox, 'sh', '-c', 'echo changed > /etc/msg; rm /bin/busybox.absent 2>/dev/null; cat /etc/msg']);
    expect(w).toMatchObject({ code: 0, stdout: 'changed\n' });
    expect(readFileSync(join(layerDir(before.layers[0]!), 'etc', 'msg'), 'utf8')).toBe('hello from layer one\n');
    expect((await tsbox(['run', refs.busybox, 'cat', '/etc/msg'])).stdout).toBe('hello from layer one\n');
  });

  it('a layer that deletes a file (a whiteout) hides it; two images share their common layer, stored once', async () => {
    const p = await tsbox(['pull', '-q', refs.two]);
    expect(p).toMatchObject({ code: 0, stderr: '' });
    const r = await tsbox(['run', refs.two, 'sh', '-c', 'cat /etc/msg; cat /etc/doomed 2>/dev/null || echo gone']);
    expect(r).toMatchObject({ code: 0, stdout: 'hello from layer two\ngone\n' });
    const one = (await byName(refs.busybox))!;
    const two = (await byName(refs.two))!;
    expect(two.layers).toHaveLength(2);
    expect(two.layers[0]).toBe(one.layers[0]);
    // Three layers named, two stored (the pool's test may have pulled this image already).
    const named = new Set([...one.layers, ...two.layers].map((d) => d.slice(7)));
    expect(named.size).toBe(2);
    expect(layerDirs().filter((d) => named.has(d))).toHaveLength(2);
    // Read-only: the same layers, and no throwaway layer over them.
    const ro = await tsbox(['run', '--read-only', refs.two, 'sh', '-c', 'cat /etc/msg; test -e /etc/doomed || echo gone; touch /x 2>/dev/null || echo read-only']);
    expect(ro).toMatchObject({ code: 0, stdout: 'hello from layer two\ngone\nread-only\n' });
    // The lower layer still has the file; the upper one has the overlay whiteout.
    expect(readFileSync(join(layerDir(one.layers[0]!), 'etc', 'doomed'), 'utf8')).toBe('doomed\n');
    const wh = statSync(join(layerDir(two.layers[1]!), 'etc', 'doomed'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
  });

  it("a warm pool of an image: each call gets a fresh sandbox of it, with the image's command, env and workdir", async () => {
    await using pool = createPool({ image: refs.two, size: 2, env: { FOO: 'pool' } });
    // The image's Cmd when the call gives none; its layers (the second's whiteout too) in each sandbox.
    const first = await pool.run([]);
    const direct = await run([], { image: refs.two, env: { FOO: 'pool' } });
    expect(first).toMatchObject({ exitCode: direct.exitCode, stdout: direct.stdout });
    const seen = await pool.run(['sh', '-c', 'echo "$FOO $(pwd)"; ls /etc; touch /etc/mine'], { env: { FOO: 'call' }, cwd: '/' });
    expect(seen.stdout.split('\n')[0]).toBe('call /');
    const again = await pool.run(['ls', '/etc']);
    expect(again.stdout).not.toContain('mine');
    expect(first.id).not.toBe(seen.id);
    expect(pool.stats()).toMatchObject({ failed: 0, handedOver: 3 });
    // Options that shape the sandbox stay the pool's.
    await expect(pool.run(['true'], { image: refs.busybox } as never)).rejects.toMatchObject({ step: 'config', path: 'image' });
    // An image that is not there: the call hears why, as run() would.
    await using missing = createPool({ image: `${refs.busybox.replace(/:1$/, '')}:nosuchtag`, pull: 'never', size: 0 });
    await expect(missing.run(['true'])).rejects.toMatchObject({ step: 'image' });
    // Each sandbox is built under the store's launch lock, as a cold launch
    // of an image is: while a prune holds the store, no build gets past it.
    const pruning = await new Store(storage).pruning();
    let released = false;
    try {
      await using held = createPool({ image: refs.two, size: 1 });
      expect(await eventually(() => held.stats().starting === 1)).toBe(true);
      await new Promise((r) => setTimeout(r, 1000));
      expect(held.stats()).toMatchObject({ ready: 0, starting: 1, created: 0, failed: 0 });
      pruning.unlock();
      released = true;
      expect(await held.run(['cat', '/etc/msg'])).toMatchObject({ exitCode: 0, stdout: 'hello from layer two\n' });
    } finally {
      if (!released) pruning.unlock();
    }
  });

  it("-P publishes the image's ExposedPorts (and --expose's) on free host ports; without -P they are only recorded", async () => {
    await tool('umoci', ['config', '--image', `${layout}:base`, '--tag', 'web', '--config.exposedports', '8000/tcp', '--config.exposedports', '9/sctp', '--clear', 'config.cmd', '--config.cmd', 'sh', '--config.cmd', '-c', '--config.cmd', 'mkdir -p /tmp/w && echo from-image > /tmp/w/index.html && (httpd -f -p 8001 -h /tmp/w &) && exec httpd -f -p 8000 -h /tmp/w']);
    const ref = await push(layout, 'web', registry, 'web:1');
    // No -P, no network: the image's ports change nothing.
    expect(await tsbox(['run', '-q', ref, 'true'])).toMatchObject({ code: 0, stderr: '' });
    const forward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
    const chainsBefore = cniChains();
    const name = `img-publish-all-${process.pid}`;
    try {
      const r = await tsbox(['run', '-d', '-q', '--name', name, '--network', 'bridge', '--expose', '8001', '-P', ref]);
      expect(r.code, r.stderr).toBe(0);
      // sctp is no port tsbox publishes: said, and left out.
      expect(r.stderr).toBe('tsbox: note: the image exposes "9/sctp", which tsbox cannot publish (tcp and udp ports only): left out\n');
      const state = (JSON.parse((await tsbox(['inspect', name])).stdout) as { network: { ports: { hostIp: string; hostPort: number; containerPort: number; protocol: string }[] } }[])[0]!;
      const ports = state.network.ports;
      expect(ports.map((p) => [p.hostIp, p.containerPort, p.protocol])).toEqual([
        ['', 8000, 'tcp'],
        ['', 8001, 'tcp'],
      ]);
      for (const p of ports) {
        let body = 'unreachable';
        for (let i = 0; i < 50 && body === 'unreachable'; i++) {
          body = await fetch(`http://10.89.0.1:${p.hostPort}/`).then(
            (res) => res.text(),
            async () => (await new Promise((res) => setTimeout(res, 100)), 'unreachable'),
          );
        }
        expect(body, String(p.containerPort)).toBe('from-image\n');
      }
    } finally {
      expect((await tsbox(['rm', '-f', name])).code).toBe(0);
      // The bridge plugin turned forwarding on, and portmap and firewall left
      // their shared chains: put back as they were, unless another suite's
      // bridged container is still there.
      if (!existsSync('/sys/class/net/tsbox0')) {
        removeCniChains(chainsBefore);
        writeFileSync('/proc/sys/net/ipv4/ip_forward', forward);
      }
    }
    expect((await tsbox(['rmi', ref])).code).toBe(0);
  });

  it('an opaque directory hides what the layers below had in it', async () => {
    const dir = join(work, 'opaque');
    const busybox = readFileSync(join(rootfs, 'bin', 'busybox'));
    const lower = tarOf([
      { name: 'bin/', type: 'dir' },
      { name: 'bin/busybox', type: 'file', data: busybox, mode: 0o755 },
      { name: 'opq/', type: 'dir' },
      { name: 'opq/old', type: 'file', data: 'old' },
      { name: 'opq/sub/', type: 'dir' },
      { name: 'opq/sub/deep', type: 'file', data: 'deep' },
    ]);
    const upper = tarOf([
      { name: 'opq/', type: 'dir' },
      { name: 'opq/.wh..wh..opq', type: 'file' },
      { name: 'opq/new', type: 'file', data: 'new' },
    ]);
    writeLayout(dir, 'o', [lower, upper], ['/bin/busybox', 'ls', '-A', '/opq']);
    const ref = await push(dir, 'o', registry, 'opaque:1');
    refs.opaque = ref;
    const r = await tsbox(['run', '-q', ref]);
    expect(r).toMatchObject({ code: 0, stdout: 'new\n' });
    expect((await tsbox(['rmi', ref])).code).toBe(0);
  });

  it('refuses a blob whose content does not match its digest, and keeps nothing of it', async () => {
    const digest = topLayer('tampered');
    const data = join(registry.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data');
    const blob = readFileSync(data);
    blob[blob.length - 100] ^= 0xff;
    writeFileSync(data, blob);
    const before = layerDirs().sort();
    const r = await tsbox(['pull', refs.tampered]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(new RegExp(`tsbox: verify\\(.*${digest.slice(7)}\\): the content's digest is sha256:[a-f0-9]{64}, not ${digest}`));
    expect(layerDirs().sort()).toEqual(before);
    expect(readdirSync(join(storage, 'tmp'))).toEqual([]);
    expect((await listed()).map((i) => i.name)).not.toContain(refs.tampered);
  });

  it('a hostile layer writes nothing outside its directory', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'tsbox-test-images-outside-'));
    try {
      const hostile = join(work, 'hostile');
      const tag = `tsbox-hostile-${process.pid}`;
      writeLayout(hostile, 'h', [
        tarOf([
          { name: `../../../../${tag}-dotdot`, type: 'file', data: 'dotdot' },
          { name: `/${tag}-abs`, type: 'file', data: 'absolute' },
          { name: 'abs', type: 'symlink', link: outside },
          { name: 'abs/through', type: 'file', data: 'through an absolute symlink' },
          { name: 'up', type: 'symlink', link: '../../../../../../..' },
          { name: `up${outside}/up`, type: 'file', data: 'through a symlinked parent' },
          { name: 'null', type: 'char', major: 1, minor: 3 },
          { name: 'bin/', type: 'dir' },
        ]),
      ]);
      refs.hostile = await push(hostile, 'h', registry, 'hostile:1');
      const p = await tsbox(['pull', refs.hostile]);
      expect(p.code).toBe(0);
      expect(readdirSync(outside)).toEqual([]);
      expect(existsSync(`/${tag}-dotdot`)).toBe(false);
      expect(existsSync(`/${tag}-abs`)).toBe(false);
      const [layer] = (await byName(refs.hostile))!.layers;
      const dir = layerDir(layer!);
      expect(readFileSync(join(dir, `${tag}-dotdot`), 'utf8')).toBe('dotdot');
      expect(readFileSync(join(dir, `${tag}-abs`), 'utf8')).toBe('absolute');
      expect(readFileSync(join(dir, outside, 'through'), 'utf8')).toBe('through an absolute symlink');
      expect(readFileSync(join(dir, outside, 'up'), 'utf8')).toBe('through a symlinked parent');
      // Root unpacks it: a device node stays inside the layer.
      expect(statSync(join(dir, 'null')).isCharacterDevice()).toBe(true);

      // A hard link may only name a file of its own layer: /etc/passwd is looked for inside it.
      const passwd = createHash('sha256').update(readFileSync('/etc/passwd')).digest('hex');
      const linked = join(work, 'hardlink');
      writeLayout(linked, 'h', [tarOf([{ name: 'passwd', type: 'link', link: '/etc/passwd' }, { name: 'escape', type: 'link', link: '../../../../etc/passwd' }])]);
      refs.hardlink = await push(linked, 'h', registry, 'hardlink:1');
      const before = layerDirs().sort();
      const h = await tsbox(['pull', '-q', refs.hardlink]);
      expect(h.code).toBe(125);
      expect(h.stderr).toMatch(/^tsbox: unpack\(sha256:[a-f0-9]{64}: passwd\): ENOENT — resolve the link's target etc\/passwd inside the layer: .*; a hard link may only name a file earlier in the same layer\n$/);
      expect(createHash('sha256').update(readFileSync('/etc/passwd')).digest('hex')).toBe(passwd);
      expect(layerDirs().sort()).toEqual(before);
      expect(readdirSync(join(storage, 'tmp'))).toEqual([]);

      // A file that claims 100 GiB (a bomb, sparse or not) is refused before anything of it is written.
      const bomb = join(work, 'bomb');
      writeLayout(bomb, 'b', [tarOf([{ name: 'small', type: 'file', data: 'x' }, { name: 'huge', type: 'file', paxSize: 100 * 2 ** 30 }])]);
      const b = await tsbox(['pull', '-q', await push(bomb, 'b', registry, 'bomb:1')]);
      expect(b.code).toBe(125);
      expect(b.stderr).toMatch(/^tsbox: unpack\(sha256:[a-f0-9]{64}: huge\): EFBIG — the layer holds more than 68719476736 bytes; a layer this large is refused as a likely archive bomb\n$/);
      expect(layerDirs().sort()).toEqual(before);
      expect(readdirSync(join(storage, 'tmp'))).toEqual([]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('pulls a Docker v2 schema 2 manifest (application/vnd.docker.distribution.manifest.v2+json)', async () => {
    await tool('skopeo', ['copy', '--quiet', '--format', 'v2s2', '--dest-tls-verify=false', `oci:${layout}:two`, `docker://${registry.host}/v2s2:1`]);
    const ref = `${registry.host}/v2s2:1`;
    const manifest = (await (await fetch(`http://${registry.host}/v2/v2s2/manifests/1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } })).json()) as { mediaType: string; layers: { mediaType: string }[] };
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(manifest.layers[0]!.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
    expect(await tsbox(['run', '-q', ref, 'cat', '/etc/msg'])).toMatchObject({ code: 0, stdout: 'hello from layer two\n' });
    expect((await tsbox(['rmi', ref])).code).toBe(0);
  });

  it("picks the host's platform from a multi-platform image (an index)", async () => {
    const dir = join(work, 'multi');
    const busybox = readFileSync(join(rootfs, 'bin', 'busybox'));
    // Only the host's image has a busybox that runs here; the others say which they are.
    const image = (arch: string) => ({
      arch,
      cmd: ['/busybox', 'cat', '/arch'],
      tars: [tarOf([{ name: 'busybox', type: 'file', data: arch === HOST_ARCH ? busybox : 'not for this machine', mode: 0o755 }, { name: 'arch', type: 'file', data: `${arch}\n` }])],
    });
    writeIndexLayout(dir, 'multi', ['s390x', HOST_ARCH!, 'riscv64'].map(image));
    await tool('skopeo', ['copy', '--quiet', '--all', '--dest-tls-verify=false', `oci:${dir}:multi`, `docker://${registry.host}/multi:1`]);
    refs.multi = `${registry.host}/multi:1`;
    const r = await tsbox(['run', '-q', refs.multi]);
    expect(r).toMatchObject({ code: 0, stdout: `${HOST_ARCH}\n` });
  });

  it('--pull never refuses an image that is not stored; a bad reference is refused by name', async () => {
    const r = await tsbox(['run', '--pull', 'never', `${registry.host}/absent:1`, 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`tsbox: image(${registry.host}/absent:1): ENOENT — the image is not in the store, and the pull policy is never; pull it first: tsbox pull ${registry.host}/absent:1\n`);
    const bad = await tsbox(['pull', 'library/Upper']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toMatch(/^tsbox: image_reference\(library\/Upper\): "Upper": repository names must be lowercase/);
  });

  it('tsbox images shows sizes; tsbox image inspect the config and the layers', async () => {
    const one = (await byName(refs.busybox))!;
    expect(one.size).toBeGreaterThan(statSync(join(rootfs, 'bin', 'busybox')).size);
    const table = await tsbox(['images']);
    expect(table.stdout).toMatch(new RegExp(`^NAME +DIGEST +LAYERS +SIZE +CREATED\\n(.*\\n)*${refs.busybox.replace(/[.]/g, '\\.')} +${one.digest.slice(7, 19)} +1 +[\\d.]+ [kM]B `));
    const i = await tsbox(['image', 'inspect', refs.busybox]);
    expect(i.code).toBe(0);
    const info = JSON.parse(i.stdout) as { config: { config: { Cmd: string[]; Env: string[] } }; layers: { dir: string; diffId: string }[] };
    expect(info.config.config.Cmd).toEqual(['sh', '-c', 'cat /etc/msg; echo FOO=$FOO; pwd']);
    expect(info.layers[0]!.dir).toBe(layerDir(one.layers[0]!));
  });

  it('bearer-token auth with credentials from an auth file; a cut download resumes where it stopped', async () => {
    const proxy = await startAuthProxy(registry, 'tester', 's3cret', 'once');
    const store = join(work, 'store-auth');
    try {
      const ref = `${proxy.host}/busybox:1`;
      const env = { ...process.env, TSBOX_STORAGE: store };
      const anonymous = await tsbox(['pull', '-q', ref], { env });
      expect(anonymous.code).toBe(125);
      expect(anonymous.stderr).toMatch(new RegExp(`^tsbox: registry\\(http://${proxy.host}/token\\?service=tsbox-test&scope=repository%3Abusybox%3Apull\\): EACCES — the token service answered 401; log in first`));
      const authFile = join(work, 'auth.json');
      writeFileSync(authFile, JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from('tester:s3cret').toString('base64') } } }));
      const p = await tsbox(['pull', ref], { env: { ...env, REGISTRY_AUTH_FILE: authFile } });
      expect(p.code).toBe(0);
      // The layer's first download was cut halfway; the retry asked for the rest.
      expect(p.stderr).toMatch(/: retrying \(/);
      expect(proxy.ranges.some((r) => /^bytes=[1-9]\d*-$/.test(r))).toBe(true);
      const r = await tsbox(['run', '--pull', 'never', ref, 'cat', '/etc/msg'], { env });
      expect(r).toMatchObject({ code: 0, stdout: 'hello from layer one\n' });
    } finally {
      await proxy.stop();
      rmSync(store, { recursive: true, force: true });
    }
  });

  it('a pull killed mid-download resumes from what it had, in the next process', async () => {
    const proxy = await startAuthProxy(registry, 'tester', 's3cret', 'stall');
    const store = join(work, 'store-killed');
    try {
      const ref = `${proxy.host}/busybox:1`;
      const authFile = join(work, 'auth-killed.json');
      writeFileSync(authFile, JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from('tester:s3cret').toString('base64') } } }));
      const env = { ...process.env, TSBOX_STORAGE: store, REGISTRY_AUTH_FILE: authFile };
      const first = spawn(process.execPath, [BIN, 'pull', '-q', ref], { env, stdio: 'ignore' });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => first.once('exit', (_code, signal) => resolve(signal)));
      try {
        // The layer's download stalls halfway: what arrived is on disk, then the puller dies.
        const digest = await proxy.stalled;
        const partial = new Store(store).downloadPath(digest);
        let had = -1;
        const settled = await eventually(() => {
          const now = existsSync(partial) ? statSync(partial).size : 0;
          const same = now > 0 && now === had;
          had = now;
          return same;
        }, 30_000);
        expect(settled).toBe(true);
        first.kill('SIGKILL');
      } finally {
        if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
      }
      expect(await exited).toBe('SIGKILL');
      const kept = statSync(new Store(store).downloadPath(await proxy.stalled)).size;
      expect(kept).toBeGreaterThan(0);
      const again = await tsbox(['pull', '-q', ref], { env });
      expect(again).toMatchObject({ code: 0, stderr: '' });
      // The second process asked for the rest only.
      expect(proxy.ranges).toContain(`bytes=${kept}-`);
      expect(existsSync(new Store(store).downloadPath(await proxy.stalled))).toBe(false);
      const r = await tsbox(['run', '--pull', 'never', ref, 'cat', '/etc/msg'], { env });
      expect(r).toMatchObject({ code: 0, stdout: 'hello from layer one\n' });
    } finally {
      await proxy.stop();
      rmSync(store, { recursive: true, force: true });
    }
  });

  it('concurrent pulls of images sharing a layer store it once', async () => {
    const store = join(work, 'store-concurrent');
    try {
      const env = { ...process.env, TSBOX_STORAGE: store };
      const results = await Promise.all([tsbox(['pull', '-q', refs.busybox], { env }), tsbox(['pull', '-q', refs.two], { env }), tsbox(['pull', '-q', refs.two], { env })]);
      for (const r of results) expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(readdirSync(join(store, 'layers', 'sha256')).filter((n) => !n.endsWith('.json'))).toHaveLength(2);
      expect(readdirSync(join(store, 'tmp'))).toEqual([]);
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  });

  it('load reads a docker save archive, an OCI archive and an OCI layout directory; import makes an image of a rootfs tarball', async () => {
    const archive = join(work, 'two.docker.tar');
    await tool('skopeo', ['copy', '--quiet', `oci:${layout}:two`, `docker-archive:${archive}:example.com/team/two:7`]);
    const d = await tsbox(['load', '-q', '-i', archive]);
    expect(d).toMatchObject({ code: 0, stdout: 'example.com/team/two:7\n', stderr: '' });
    expect(await tsbox(['run', 'example.com/team/two:7', 'sh', '-c', 'cat /etc/msg; cat /etc/doomed 2>/dev/null || echo gone'])).toMatchObject({ code: 0, stdout: 'hello from layer two\ngone\n' });
    const ociTar = join(work, 'base.oci.tar');
    await tool('skopeo', ['copy', '--quiet', `oci:${layout}:base`, `oci-archive:${ociTar}:base`]);
    expect(await tsbox(['load', '-q', '-i', ociTar])).toMatchObject({ code: 0, stdout: 'localhost/base:latest\n' });
    expect(await tsbox(['run', 'localhost/base', 'cat', '/etc/msg'])).toMatchObject({ code: 0, stdout: 'hello from layer one\n' });
    expect(await tsbox(['load', '-q', '-i', join(work, 'multi')])).toMatchObject({ code: 0, stdout: 'localhost/multi:latest\n' });
    expect(await tsbox(['run', 'localhost/multi'])).toMatchObject({ code: 0, stdout: `${HOST_ARCH}\n` });
    const tgz = join(work, 'rootfs.tgz');
    await tool('tar', ['-C', rootfs, '-czf', tgz, '.']);
    expect(await tsbox(['import', '-q', tgz, 'imported:1'])).toMatchObject({ code: 0, stdout: 'docker.io/library/imported:1\n' });
    expect(await tsbox(['run', 'imported:1', 'head', '-1', '/etc/passwd'])).toMatchObject({ code: 0, stdout: 'root:x:0:0:root:/root:/bin/sh\n' });
    for (const ref of ['example.com/team/two:7', 'localhost/base', 'localhost/multi', 'imported:1']) expect((await tsbox(['rmi', ref])).code).toBe(0);
  });

  it("load finds an archive's files only inside it", async () => {
    const escape = join(work, 'escape.tar');
    writeFileSync(escape, tarOf([{ name: 'manifest.json', type: 'file', data: JSON.stringify([{ Config: '../../../etc/passwd', RepoTags: ['x:1'], Layers: [] }]) }]));
    const e = await tsbox(['load', '-i', escape]);
    expect(e.code).toBe(125);
    expect(e.stderr).toBe('tsbox: load(../../../etc/passwd): the archive names its config outside itself; the archive is refused\n');
    const linked = join(work, 'linked.tar');
    writeFileSync(linked, tarOf([{ name: 'manifest.json', type: 'file', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: [] }]) }, { name: 'c.json', type: 'symlink', link: '/etc/passwd' }]));
    const l = await tsbox(['load', '-i', linked]);
    expect(l.code).toBe(125);
    expect(l.stderr).toBe("tsbox: load(c.json): the archive's config is not a file inside it; the archive is refused\n");
    expect(readdirSync(join(storage, 'tmp'))).toEqual([]);
  });

  it('image export writes an OCI bundle: the layers applied into rootfs, the config into config.json', async () => {
    const bundle = join(work, 'bundle-two');
    const e = await tsbox(['image', 'export', refs.two, bundle]);
    expect(e).toMatchObject({ code: 0, stdout: `${bundle}\n` });
    expect(readFileSync(join(bundle, 'rootfs', 'etc', 'msg'), 'utf8')).toBe('hello from layer two\n');
    expect(existsSync(join(bundle, 'rootfs', 'etc', 'doomed'))).toBe(false);
    expect(statSync(join(bundle, 'rootfs', 'bin', 'busybox')).isFile()).toBe(true);
    // The rootfs keeps the image's owners, setuid bits and device nodes: no other user may reach into the bundle (0700, as umoci makes it).
    expect(statSync(bundle).mode & 0o7777).toBe(0o700);
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[]; env: string[]; cwd: string }; root: { path: string } };
    expect(spec.process).toMatchObject({ args: ['sh', '-c', 'cat /etc/msg; echo FOO=$FOO; pwd'], cwd: '/tmp' });
    expect(spec.process.env).toContain('FOO=fromimage');
    expect(spec.root.path).toBe('rootfs');
    // tsbox runs it as an OCI runtime (runc's run form).
    const r = await tsbox(['run', '--bundle', bundle, `tsbox-img-bundle-${process.pid}`]);
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'hello from layer two\nFOO=fromimage\n/tmp\n' });
    // Into a directory that is not empty: refused, and nothing of it touched.
    const again = await tsbox(['image', 'export', refs.two, bundle]);
    expect(again.code).toBe(125);
    expect(again.stderr).toBe(`tsbox: image_export(${bundle}): EEXIST — the bundle directory exists and is not empty; give a new directory\n`);
    rmSync(bundle, { recursive: true });
  });

  it('image export as root never writes where another user could lead it: not into their directory, not through a symlink, not under a directory they can change', async () => {
    expect((await tsbox(['pull', '-q', refs.two])).code).toBe(0);
    const base = join(work, 'export-hostile');
    mkdirSync(base, { mode: 0o755 });
    try {
      // An empty directory another user (nobody) owns: they could plant config.json -> a host file in it while the layers are applied.
      const theirs = join(base, 'theirs');
      mkdirSync(theirs);
      chmodSync(theirs, 0o777);
      chownSync(theirs, 65534, 65534);
      const a = await tsbox(['image', 'export', refs.two, theirs]);
      expect(a.stderr).toBe(`tsbox: image_export(${theirs}): EPERM — the bundle directory exists and belongs to uid 65534, not to this user (0); give a new directory, or one of your own\n`);
      expect(a.code).toBe(125);
      expect(readdirSync(theirs)).toEqual([]);
      expect(statSync(theirs).mode & 0o7777).toBe(0o777);
      // A symlink where the bundle goes, to an empty directory of root's: not followed, nothing made there.
      const elsewhere = join(base, 'elsewhere');
      mkdirSync(elsewhere, { mode: 0o755 });
      const link = join(base, 'link');
      symlinkSync(elsewhere, link);
      const b = await tsbox(['image', 'export', refs.two, link]);
      expect(b.stderr).toBe(`tsbox: image_export(${link}): EEXIST — the bundle directory exists and is not a directory (a symlink is not followed); give a new directory\n`);
      expect(readdirSync(elsewhere)).toEqual([]);
      expect(statSync(elsewhere).mode & 0o7777).toBe(0o755);
      // Under a directory nobody owns (they could rename the bundle's directory away and put a symlink in its place), and under one anyone may write.
      const owned = join(base, 'owned');
      mkdirSync(owned, { mode: 0o755 });
      chownSync(owned, 65534, 65534);
      const c = await tsbox(['image', 'export', refs.two, join(owned, 'bundle')]);
      expect(c.stderr).toBe(`tsbox: image_export(${owned}): EPERM — the bundle would be written under a directory that belongs to uid 65534: another user could move it elsewhere; export into a directory only root can change\n`);
      expect(readdirSync(owned)).toEqual([]);
      // An empty directory of root's that is there already is only opened (never made through a path they could change): exported into.
      const there = join(owned, 'there');
      mkdirSync(there, { mode: 0o755 });
      const t = await tsbox(['image', 'export', refs.two, there]);
      expect(t, t.stderr).toMatchObject({ code: 0, stdout: `${there}\n` });
      expect(statSync(there).mode & 0o7777).toBe(0o700);
      expect(readFileSync(join(there, 'rootfs', 'etc', 'msg'), 'utf8')).toBe('hello from layer two\n');
      rmSync(there, { recursive: true });
      const open = join(base, 'open');
      mkdirSync(open);
      chmodSync(open, 0o777);
      const d = await tsbox(['image', 'export', refs.two, join(open, 'sub', 'bundle')]);
      expect(d.stderr).toBe(`tsbox: image_export(${open}): EPERM — the bundle would be written under a directory writable by others (mode 777): another user could move it elsewhere; export into a directory only root can change\n`);
      expect(readdirSync(open)).toEqual([]);
      // A symlink on the way that another user owns: they choose where it leads.
      const theirLink = join(base, 'their-link');
      symlinkSync(elsewhere, theirLink);
      lchownSync(theirLink, 65534, 65534);
      const e = await tsbox(['image', 'export', refs.two, join(theirLink, 'bundle')]);
      expect(e.stderr).toBe(`tsbox: image_export(${theirLink}): EPERM — the bundle would be written under a symlink that belongs to uid 65534: another user could move it elsewhere; export into a directory only root can change\n`);
      expect(readdirSync(elsewhere)).toEqual([]);
      // An empty directory of root's own, under a sticky one anyone may write (as /tmp): exported into, made private.
      const sticky = join(base, 'sticky');
      mkdirSync(sticky);
      chmodSync(sticky, 0o1777);
      const mine = join(sticky, 'mine');
      mkdirSync(mine, { mode: 0o755 });
      const f = await tsbox(['image', 'export', refs.two, mine]);
      expect(f, f.stderr).toMatchObject({ code: 0, stdout: `${mine}\n` });
      expect(statSync(mine).mode & 0o7777).toBe(0o700);
      expect(readFileSync(join(mine, 'rootfs', 'etc', 'msg'), 'utf8')).toBe('hello from layer two\n');
      expect(JSON.parse(readFileSync(join(mine, 'config.json'), 'utf8'))).toMatchObject({ root: { path: 'rootfs' } });
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it("prune and rmi --force keep every layer a container runs on, named or not, until the container goes", async () => {
    expect((await tsbox(['pull', '-q', refs.two])).code).toBe(0);
    const two = (await byName(refs.two))!;
    const name = `tsbox-img-inuse-${process.pid}`;
    expect((await tsbox(['run', '-d', '--name', name, refs.two, 'sleep', '60'])).code).toBe(0);
    try {
      // The name goes; the layers under the running container stay, nameless.
      expect(await tsbox(['rmi', '--force', refs.two])).toMatchObject({ code: 0, stdout: `${refs.two}\n` });
      expect(await byName(refs.two)).toBeUndefined();
      for (const d of two.layers) expect(existsSync(layerDir(d)), d).toBe(true);
      const p = await tsbox(['image', 'prune']);
      expect(p.code).toBe(0);
      for (const d of two.layers) expect(p.stdout, d).not.toContain(d);
      for (const d of two.layers) expect(existsSync(layerDir(d)), d).toBe(true);
      expect(await tsbox(['exec', name, 'cat', '/etc/msg'])).toMatchObject({ code: 0, stdout: 'hello from layer two\n' });
    } finally {
      expect((await tsbox(['rm', '-f', name])).code).toBe(0);
    }
    // With the container gone, its nameless top layer goes with the next prune.
    const p = await tsbox(['image', 'prune']);
    expect(p.stdout.split('\n')).toContain(two.layers[1]);
    expect(existsSync(layerDir(two.layers[1]!))).toBe(false);
    expect((await tsbox(['pull', '-q', refs.two])).code).toBe(0);
  });

  it("rmi waits for a launch between resolving its image's layers and recording them, then sees its container", async () => {
    const b = join(work, 'racer');
    await tool('umoci', ['unpack', '--image', `${layout}:base`, b]);
    writeFileSync(join(b, 'rootfs', 'etc', 'racer'), 'racer\n');
    await tool('umoci', ['repack', '--image', `${layout}:racer`, b]);
    rmSync(b, { recursive: true, force: true });
    const ref = await push(layout, 'racer', registry, 'racer:1');
    expect((await tsbox(['pull', '-q', ref])).code).toBe(0);
    const own = layerDir(topLayer('racer'));
    // What spawn() does, in its order, held at the point of the race: the
    // store's launch lock taken, the layers resolved, no state yet.
    const store = new Store(storage);
    const imageLock = await store.launching();
    const image = await imageRun(['sleep', '60'], { image: ref }, { store });
    const rmi = spawn(process.execPath, [BIN, 'rmi', ref], { env: { ...process.env, TSBOX_STORAGE: storage }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    rmi.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const ended = new Promise<number | null>((r) => rmi.once('close', r));
    expect(await eventually(() => err.includes(WAITING_FOR_LAUNCH), 20_000), err).toBe(true);
    // The lock is what holds it: the layer is there, the image still named.
    expect(existsSync(own)).toBe(true);
    expect(await byName(ref)).toBeDefined();
    const parsed = parseRunInput(image.command, image.options);
    const c = await launch(parsed.command, parsed.options, { layers: image.layers, imageLock });
    try {
      // Released once the state names the layers: rmi goes on, and finds the container made from it.
      expect(await ended).toBe(125);
      expect(err).toBe(`${WAITING_FOR_LAUNCH}\ntsbox: image(${ref}): EBUSY — container ${c.id.slice(0, 12)} was made from it; remove the container first (tsbox rm), or pass --force\n`);
      expect(existsSync(own)).toBe(true);
      expect((await tsbox(['rmi', '--force', ref])).code).toBe(0);
      expect(existsSync(own)).toBe(true);
      expect(readFileSync(join(own, 'etc', 'racer'), 'utf8')).toBe('racer\n');
    } finally {
      c.kill('SIGKILL');
      await c.wait();
    }
    expect((await tsbox(['image', 'prune'])).code).toBe(0);
    expect(existsSync(own)).toBe(false);
  });

  it('rmi and image prune remove only what no image uses', async () => {
    const one = (await byName(refs.busybox))!;
    const two = (await byName(refs.two))!;
    // An image a container was made from stays until the container goes.
    const name = `tsbox-img-rmi-${process.pid}`;
    expect((await tsbox(['run', '-d', '--name', name, refs.two, 'sleep', '30'])).code).toBe(0);
    try {
      const busy = await tsbox(['rmi', refs.two]);
      expect(busy.code).toBe(125);
      expect(busy.stderr).toBe(`tsbox: image(${refs.two}): EBUSY — container ${name} was made from it; remove the container first (tsbox rm), or pass --force\n`);
    } finally {
      expect((await tsbox(['rm', '-f', name])).code).toBe(0);
    }
    const r = await tsbox(['rmi', refs.two]);
    expect(r).toMatchObject({ code: 0, stdout: `${refs.two}\n` });
    expect(existsSync(layerDir(two.layers[1]!))).toBe(false);
    // The shared layer stays: busybox:1 still has it, and still runs.
    expect(existsSync(layerDir(one.layers[0]!))).toBe(true);
    expect((await tsbox(['run', refs.busybox, 'cat', '/etc/msg'])).stdout).toBe('hello from layer one\n');
    // A layer no image names (a crashed pull's) goes with prune, and only it.
    const orphan = `sha256:${'ab'.repeat(32)}`;
    mkdirSync(layerDir(orphan));
    writeFileSync(`${layerDir(orphan)}.json`, '{}');
    // Not while a pull is in progress: its layers are stored before its name.
    const pulling = loadNative().binding.tryLockFile(join(storage, 'locks', `pull-test-${process.pid}`), 'test\n')!;
    try {
      expect(await tsbox(['image', 'prune'])).toMatchObject({ code: 0, stdout: '' });
      expect(existsSync(layerDir(orphan))).toBe(true);
    } finally {
      pulling.release();
    }
    const p = await tsbox(['image', 'prune']);
    expect(p).toMatchObject({ code: 0 });
    expect(p.stdout.split('\n')).toContain(orphan);
    expect(existsSync(layerDir(orphan))).toBe(false);
    expect(existsSync(layerDir(one.layers[0]!))).toBe(true);
    const gone = await tsbox(['rmi', refs.two]);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toMatch(/no such image in the store/);
    for (const ref of [refs.busybox, refs.hostile, refs.multi, refs.stopper]) expect((await tsbox(['rmi', ref])).code).toBe(0);
    expect(layerDirs()).toEqual([]);
    expect(await listed()).toEqual([]);
  });
});

describe('the image commands of the CLI', () => {
  it('each takes --help and -h, which fit 80 columns', async () => {
    for (const command of ['pull', 'images', 'rmi', 'image', 'load', 'import']) {
      for (const flag of ['--help', '-h']) {
        const h = await cli([command, flag]);
        expect(h.code, `${command} ${flag}`).toBe(0);
        expect(h.stdout, `${command} ${flag}`).toMatch(new RegExp(`^Usage: tsbox ${command} `));
        expect(h.stdout.split('\n').filter((l) => [...l].length > 80), `${command} ${flag}`).toEqual([]);
      }
    }
  });
});

describe('rootless', () => {
  const user = throwawayUser(`tsbox-img-${process.pid}`);

  it('an ordinary user pulls into a store of its own and runs an image of two layers', async () => {
    const uid = user.uid();
    // The user reaches its store through the test's directory, which it may not list.
    chmodSync(work, 0o711);
    const store = join(work, 'store-rootless');
    mkdirSync(store, { mode: 0o700 });
    chownSync(store, uid, uid);
    const env = { ...process.env, XDG_RUNTIME_DIR: '', TSBOX_STORAGE: store };
    const as = (args: string[]) => cli(args, { uid, gid: uid, env, killAfterMs: 60_000 });
    const p = await as(['pull', '-q', refs.two]);
    expect(p).toMatchObject({ code: 0, stderr: '' });
    const r = await as(['run', refs.two, 'sh', '-c', 'cat /etc/msg; cat /etc/doomed 2>/dev/null || echo gone; id -u; echo x > /etc/msg && cat /etc/msg']);
    expect(r).toMatchObject({ code: 0, stdout: 'hello from layer two\ngone\n0\nx\n' });
    // The layers are the user's own, and a whiteout is one without privilege too.
    const layers = readdirSync(join(store, 'layers', 'sha256')).filter((n) => !n.endsWith('.json'));
    expect(layers).toHaveLength(2);
    for (const l of layers) expect(statSync(join(store, 'layers', 'sha256', l)).uid).toBe(uid);
    // An opaque directory, unpacked and mounted without privilege.
    expect(await as(['run', '-q', refs.opaque])).toMatchObject({ code: 0, stdout: 'new\n' });
    expect(await as(['rmi', refs.opaque])).toMatchObject({ code: 0 });
    const removed = await as(['rmi', refs.two]);
    expect(removed).toMatchObject({ code: 0 });
    expect(readdirSync(join(store, 'layers', 'sha256'))).toEqual([]);
  });

  it("an ordinary user's export that fails leaves nothing, read-only directories included", async () => {
    const uid = user.uid();
    chmodSync(work, 0o711);
    const store = join(work, 'store-rootless-export');
    const out = join(work, 'out-rootless-export');
    for (const d of [store, out]) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, uid, uid);
    }
    // An image with a directory its owner may not write, whose user is not in its /etc/passwd: the export fails after the layers are applied.
    const dir = join(work, 'layout-ghost');
    writeLayout(dir, 'ghost', [tarOf([{ name: 'etc/', type: 'dir' }, { name: 'etc/passwd', type: 'file', data: 'root:x:0:0::/:/bin/sh\n' }, { name: 'ro/', type: 'dir', mode: 0o555 }, { name: 'ro/f', type: 'file', data: 'x' }])]);
    await tool('umoci', ['config', '--image', `${dir}:ghost`, '--config.user', 'ghost']);
    const ref = await push(dir, 'ghost', registry, 'ghost:1');
    const env = { ...process.env, XDG_RUNTIME_DIR: '', TSBOX_STORAGE: store };
    const as = (args: string[]) => cli(args, { uid, gid: uid, env, killAfterMs: 60_000 });
    expect(await as(['pull', '-q', ref])).toMatchObject({ code: 0, stderr: '' });
    // Parents it has to make go with the bundle directory.
    const bundle = join(out, 'deep', 'er', 'bundle');
    const e = await as(['image', 'export', ref, bundle]);
    expect(e.stderr).toBe(`tsbox: image_export(ghost): ENOENT — the image's user "ghost" is not in its /etc/passwd\n`);
    expect(e.code).toBe(125);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe("image export: what the layers share stays shared, and a full disk is not reached", () => {
  /** Bytes of disk the tree at `path` takes, each inode once (du's count). */
  const du = (path: string) => Number(spawnSync('du', ['-s', '-B1', path], { encoding: 'utf8' }).stdout.split('\t')[0]);

  it("a layer's hard links stay hard links and its holes stay holes: the bundle takes the layer's disk, not a copy per link", async () => {
    const dir = join(work, 'layout-links');
    const data = Buffer.alloc(1 << 20, 'x');
    const zeros = Buffer.alloc(64 << 20);
    zeros[0] = 1;
    writeLayout(dir, 'links', [
      tarOf([
        { name: 'f', type: 'file', data },
        ...Array.from({ length: 100 }, (_, i) => ({ name: `f${i}`, type: 'link' as const, link: 'f' })),
        { name: 'zeros', type: 'file', data: zeros },
        ...Array.from({ length: 4 }, (_, i) => ({ name: `z${i}`, type: 'link' as const, link: 'zeros' })),
      ]),
    ]);
    const ref = await push(dir, 'links', registry, 'links:1');
    expect(await tsbox(['pull', '-q', ref])).toMatchObject({ code: 0, stderr: '' });
    const bundle = join(work, 'bundle-links');
    try {
      expect(await tsbox(['image', 'export', ref, bundle])).toMatchObject({ code: 0, stderr: '' });
      const rootfs = join(bundle, 'rootfs');
      const f = statSync(join(rootfs, 'f'));
      expect(f.nlink).toBe(101);
      expect(statSync(join(rootfs, 'f99')).ino).toBe(f.ino);
      expect(readFileSync(join(rootfs, 'f42')).equals(data)).toBe(true);
      const z = statSync(join(rootfs, 'z3'));
      expect([z.ino, z.nlink, z.size]).toEqual([statSync(join(rootfs, 'zeros')).ino, 5, 64 << 20]);
      expect(z.blocks * 512).toBeLessThan(1 << 20);
      // A copy per link and the holes written out took 421 MiB; the layer takes some 1 MiB.
      const [layer] = (await byName(ref))!.layers;
      expect(du(rootfs)).toBeLessThanOrEqual(du(layerDir(layer!)) + 64 * 1024);
    } finally {
      rmSync(bundle, { recursive: true, force: true });
      expect((await tsbox(['rmi', ref])).code).toBe(0);
    }
  });

  it('a layer or an export that would fill its filesystem stops while the filesystem still has room, saying so', async () => {
    // A 32 MiB filesystem, of which tsbox leaves a twentieth free; 48 MiB of data (which gzip makes 50 KB) to write there.
    const small = mkdtempSync(join(tmpdir(), 'tsbox-test-smallfs-'));
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tsbox-test', small]).status).toBe(0);
    const margin = Math.floor((32 << 20) / 20);
    const free = () => {
      const st = statfsSync(small);
      return st.bavail * st.bsize;
    };
    try {
      const blob = join(work, 'fill.tar.gz');
      writeFileSync(blob, gzipSync(tarOf([{ name: 'a', type: 'file', data: Buffer.alloc(24 << 20, 'a') }, { name: 'b', type: 'file', data: Buffer.alloc(24 << 20, 'b') }])));
      const dest = join(small, 'layer');
      mkdirSync(dest);
      const { unpackLayer, flattenLayers } = loadNative().binding;
      const u = await unpackLayer(blob, dest, 2 ** 30, 1000).then(() => null, (err: unknown) => fromNativeReport(err, 'unpack', 'fill'));
      expect(u?.toLine()).toMatch(new RegExp(`^unpack\\(fill: ${small}/layer\\): ENOSPC — not enough space: the filesystem has \\d+ bytes free; \\d+ more would leave less than the ${margin} tsbox leaves free; free space on that filesystem, or keep the image store on a larger one \\(TSBOX_STORAGE\\); a layer is stopped before it fills the disk$`));
      expect(free()).toBeGreaterThanOrEqual(margin - (64 << 10));
      rmSync(dest, { recursive: true });

      // The same layer on the test's own disk, exported onto the small one: refused before the second file is written.
      const layer = join(work, 'fill-layer');
      mkdirSync(layer);
      await unpackLayer(blob, layer, 2 ** 30, 1000);
      const rootfs = join(small, 'rootfs');
      mkdirSync(rootfs);
      const f = await flattenLayers([layer], rootfs).then(() => null, (err: unknown) => fromNativeReport(err, 'image_export', 'fill'));
      expect(f?.toLine()).toMatch(new RegExp(`^image_export\\(fill: ${small}/rootfs\\): ENOSPC — not enough space: the filesystem has \\d+ bytes free; \\d+ more would leave less than the ${margin} tsbox leaves free; free space on that filesystem, or export to a larger one; an export is stopped before it fills the disk$`));
      expect(free()).toBeGreaterThanOrEqual(margin - (64 << 10));
      rmSync(layer, { recursive: true });
    } finally {
      spawnSync('umount', [small]);
      rmSync(small, { recursive: true, force: true });
    }
  });
});

describe('rootless export of what its owner may not read', () => {
  const user = throwawayUser(`tsbox-imgx-${process.pid}`);

  it('an ordinary user exports an image with a directory and a file of mode 000, and the store keeps their modes', async () => {
    const uid = user.uid();
    chmodSync(work, 0o711);
    const store = join(work, 'store-rootless-locked');
    const out = join(work, 'out-rootless-locked');
    for (const d of [store, out]) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, uid, uid);
    }
    const dir = join(work, 'layout-locked');
    writeLayout(dir, 'locked', [tarOf([{ name: 'locked/', type: 'dir', mode: 0 }, { name: 'locked/f', type: 'file', data: 'inside' }, { name: 'shadow', type: 'file', mode: 0, data: 'secret' }])]);
    const ref = await push(dir, 'locked', registry, 'locked:1');
    const env = { ...process.env, XDG_RUNTIME_DIR: '', TSBOX_STORAGE: store };
    const as = (args: string[]) => cli(args, { uid, gid: uid, env, killAfterMs: 60_000 });
    expect(await as(['pull', '-q', ref])).toMatchObject({ code: 0, stderr: '' });
    const bundle = join(out, 'bundle');
    // It failed with EACCES on the directory: the user's own store has no root to override its modes.
    expect(await as(['image', 'export', ref, bundle])).toMatchObject({ code: 0, stderr: '' });
    const rootfs = join(bundle, 'rootfs');
    expect(statSync(join(rootfs, 'locked')).mode & 0o7777).toBe(0);
    expect(statSync(join(rootfs, 'shadow')).mode & 0o7777).toBe(0);
    expect(readFileSync(join(rootfs, 'locked', 'f'), 'utf8')).toBe('inside');
    expect(readFileSync(join(rootfs, 'shadow'), 'utf8')).toBe('secret');
    const [layer] = readdirSync(join(store, 'layers', 'sha256')).filter((n) => !n.endsWith('.json'));
    for (const e of ['locked', 'shadow']) expect(statSync(join(store, 'layers', 'sha256', layer!, e)).mode & 0o7777).toBe(0);
  });
});
