/** Image references, the registry auth challenge, auth files and the platform choice (issue 18). */
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { credentialsFor, parseChallenges } from '../../ts/image/auth.js';
import { formatReference, isLoopback, parseReference, registryHost } from '../../ts/image/reference.js';
import { choosePlatform, documentKind } from '../../ts/image/spec.js';
import { realmGetsCredentials, Registry, sameOrigin } from '../../ts/image/registry.js';
import { findImage, imageBase, lookupImage } from '../../ts/image/run.js';
import { inspectImage, removeImage } from '../../ts/image/manage.js';
import { pull } from '../../ts/image/pull.js';
import { Store } from '../../ts/image/store.js';
import { TsboxError } from '../../ts/errors.js';
import { loadNative } from '../../ts/native.js';
import { parseRunInput } from '../../ts/config/schema.js';
import { lstatSync, readFileSync } from 'node:fs';
import { fromNativeReport } from '../../ts/errors.js';
import { tarOf } from '../support/registry.js';

const D = `sha256:${'a1'.repeat(32)}`;

describe('image references (Docker short-name rules)', () => {
  it.each([
    ['alpine', 'docker.io/library/alpine:latest'],
    ['alpine:3.20', 'docker.io/library/alpine:3.20'],
    ['library/alpine', 'docker.io/library/alpine:latest'],
    ['user/app:v1', 'docker.io/user/app:v1'],
    ['index.docker.io/user/app', 'docker.io/user/app:latest'],
    ['quay.io/org/app:1.0', 'quay.io/org/app:1.0'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b/c:tag_1.2-x', 'localhost:5000/a/b/c:tag_1.2-x'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    [`alpine@${D}`, `docker.io/library/alpine@${D}`],
    [`host:5000/app:1@${D}`, `host:5000/app:1@${D}`],
  ])('%s is %s', (ref, full) => {
    expect(formatReference(parseReference(ref))).toBe(full);
  });

  it('splits a reference into its parts', () => {
    expect(parseReference('localhost:5000/app:7')).toEqual({ domain: 'localhost:5000', repository: 'app', tag: '7', digest: null });
    expect(parseReference(`app@${D}`)).toEqual({ domain: 'docker.io', repository: 'library/app', tag: null, digest: D });
  });

  it.each([
    ['', /empty/],
    ['Alpine', /must be lowercase/],
    ['alpine:', /"" is not a valid tag/],
    ['alpine@sha256:abc', /is not a sha256 digest/],
    ['a//b', /not a valid repository name component/],
    ['alpine:-bad', /not a valid tag/],
    ['-alpine', /not a valid repository name component/],
  ])('refuses %j', (ref, message) => {
    const e = (() => {
      try {
        parseReference(ref);
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(TsboxError);
    expect((e as TsboxError).step).toBe('image_reference');
    expect((e as TsboxError).message).toMatch(message);
  });

  it('talks to Docker Hub at registry-1.docker.io; loopback hosts may use http', () => {
    expect(registryHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryHost('quay.io')).toBe('quay.io');
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000']) expect(isLoopback(h)).toBe(true);
    for (const h of ['quay.io', '10.0.0.1:5000', 'localhost.example.com', '128.0.0.1']) expect(isLoopback(h)).toBe(false);
  });
});

describe('the WWW-Authenticate challenge', () => {
  it("parses Docker Hub's bearer challenge", () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
  });

  it('takes several challenges, quoted commas and escapes, unquoted values and any case', () => {
    expect(parseChallenges('Basic realm="Registry, \\"main\\"", BEARER Realm=https://t.example/token , service=reg')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry, "main"' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/token', service: 'reg' } },
    ]);
    expect(parseChallenges('')).toEqual([]);
  });
});

describe('credentials from auth files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbox-test-auth-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads podman's auth.json before Docker's config.json, and Docker Hub's legacy key", () => {
    const podman = join(dir, 'auth.json');
    const docker = join(dir, 'config.json');
    writeFileSync(podman, JSON.stringify({ auths: { 'quay.io': { auth: Buffer.from('pod:man:pw').toString('base64') } } }));
    writeFileSync(docker, JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('hub:secret').toString('base64') }, 'quay.io': { auth: Buffer.from('dock:er').toString('base64') } } }));
    expect(credentialsFor('quay.io', [podman, docker])).toEqual({ username: 'pod', password: 'man:pw' });
    expect(credentialsFor('docker.io', [podman, docker])).toEqual({ username: 'hub', password: 'secret' });
    expect(credentialsFor('ghcr.io', [podman, docker])).toBeNull();
    expect(credentialsFor('quay.io', [join(dir, 'absent.json')])).toBeNull();
  });
});

describe('manifests', () => {
  const entry = (architecture: string, variant?: string) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D, size: 1, platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) } });

  it("picks the host's platform from an index", () => {
    const list = [entry('arm', 'v7'), { ...entry('arm64', 'v8'), digest: `sha256:${'b2'.repeat(32)}` }, { ...entry('amd64'), digest: `sha256:${'c3'.repeat(32)}` }];
    expect(choosePlatform(list, 'x', 'x64').digest).toBe(`sha256:${'c3'.repeat(32)}`);
    expect(choosePlatform(list, 'x', 'arm64').digest).toBe(`sha256:${'b2'.repeat(32)}`);
    expect(() => choosePlatform([entry('s390x')], 'img', 'x64')).toThrow(/image_platform\(img\): the image has no linux\/amd64 manifest \(it has: linux\/s390x\)/);
  });

  it('refuses media types it does not read, by name', () => {
    expect(documentKind('application/vnd.docker.distribution.manifest.list.v2+json', 'x')).toBe('index');
    expect(documentKind('application/vnd.oci.image.manifest.v1+json; charset=utf-8', 'x')).toBe('manifest');
    expect(() => documentKind('application/vnd.docker.distribution.manifest.v1+prettyjws', 'img')).toThrow(/unsupported manifest media type application\/vnd.docker.distribution.manifest.v1\+prettyjws/);
  });
});

describe('the image options', () => {
  it('stopSignal takes a name with or without SIG, or a number, and keeps the name', () => {
    for (const [given, name] of [['usr1', 'SIGUSR1'], ['SIGTERM', 'SIGTERM'], [15, 'SIGTERM'], ['9', 'SIGKILL']] as const) {
      expect(parseRunInput(['true'], { stopSignal: given }).options.stopSignal).toBe(name);
    }
    expect(() => parseRunInput(['true'], { stopSignal: 'SIGBOGUS' })).toThrow(/config\(stopSignal\): "SIGBOGUS" is not a signal/);
  });

  it('image is refused with rootfs; pull and entrypoint need an image', () => {
    expect(() => parseRunInput(['true'], { image: 'alpine', rootfs: '/x' })).toThrow(/config\(image\): cannot be combined with rootfs/);
    expect(() => parseRunInput(['true'], { pull: 'always' })).toThrow(/config\(pull\): needs an image/);
    expect(() => parseRunInput(['true'], { image: 'alpine', pull: 'sometimes' })).toThrow(/config\(pull\)/);
  });

  it('a launch of an image refuses a pull policy it does not know, before looking for the image', async () => {
    const store = { find: () => { throw new Error('looked up'); } } as unknown as Store;
    const err = await imageBase({ image: 'alpine', pull: 'sometimes' as 'never' }, { store }).catch((e: unknown) => e as TsboxError);
    expect(err).toBeInstanceOf(TsboxError);
    expect(err.toLine()).toBe('config(pull): "sometimes" is not a pull policy; use missing (the default), always or never');
  });
});

describe('registry credentials go only where they are meant to', () => {
  it('compares origins: scheme, host and port', () => {
    expect(sameOrigin('https://r.example/v2/x', 'https://r.example:443')).toBe(true);
    expect(sameOrigin('http://r.example/v2/x', 'https://r.example')).toBe(false);
    expect(sameOrigin('https://r.example:5000/v2/', 'https://r.example')).toBe(false);
    expect(sameOrigin('https://cdn.r.example/blob', 'https://r.example')).toBe(false);
  });

  it('Basic credentials go to an https token realm of any host, to an http one only between loopback addresses', () => {
    expect(realmGetsCredentials(new URL('https://auth.docker.io/token'), 'docker.io', false)).toBe(true);
    expect(realmGetsCredentials(new URL('http://auth.example/token'), 'r.example:5000', true)).toBe(false);
    expect(realmGetsCredentials(new URL('http://127.0.0.1:5001/token'), 'r.example:5000', true)).toBe(false);
    expect(realmGetsCredentials(new URL('http://auth.example/token'), '127.0.0.1:5000', true)).toBe(false);
    expect(realmGetsCredentials(new URL('http://127.0.0.1:5001/token'), '127.0.0.1:5000', true)).toBe(true);
    expect(realmGetsCredentials(new URL('http://127.0.0.1:5001/token'), '127.0.0.1:5000', false)).toBe(false);
  });

  it("sends the credentials to a token realm on another origin (as Docker Hub's auth.docker.io is), and to nothing else", async () => {
    const seen: { path: string; headers: IncomingHttpHeaders }[] = [];
    const listen = (server: Server) => new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
    const auth = createServer((req, res) => {
      seen.push({ path: `auth${req.url}`, headers: req.headers });
      if (req.headers.authorization !== `Basic ${Buffer.from('me:secret').toString('base64')}`) return res.writeHead(401).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'T0KEN' }));
    });
    const authPort = await listen(auth);
    const cdn = createServer((req, res) => {
      seen.push({ path: `cdn${req.url}`, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end('{}');
    });
    const cdnPort = await listen(cdn);
    const registry = createServer((req, res) => {
      seen.push({ path: `registry${req.url}`, headers: req.headers });
      if (req.headers.authorization !== 'Bearer T0KEN') return res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${authPort}/token",service="test"` }).end();
      if (req.url === '/v2/') return res.writeHead(200).end();
      res.writeHead(307, { location: `http://127.0.0.1:${cdnPort}/manifest` }).end();
    });
    const port = await listen(registry);
    try {
      const r = new Registry(`127.0.0.1:${port}`, 'app', { credentials: { username: 'me', password: 'secret' } });
      await r.connect();
      const m = await r.manifest('latest');
      expect(m.bytes.toString()).toBe('{}');
      expect(seen.find((s) => s.path.startsWith('auth/token'))?.headers.authorization).toMatch(/^Basic /);
      // The redirect elsewhere carries neither the token nor the password.
      expect(seen.find((s) => s.path === 'cdn/manifest')?.headers.authorization).toBeUndefined();
      expect(seen.filter((s) => s.path.startsWith('registry')).every((s) => !String(s.headers.authorization ?? '').startsWith('Basic'))).toBe(true);
    } finally {
      for (const s of [auth, cdn, registry]) s.close();
    }
  });
});

describe('the image store', () => {
  const base = mkdtempSync(join(tmpdir(), 'tsbox-test-store-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('refuses a root that other users may write, or that is not this user\'s, saying what to do', () => {
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const refusal = (root: string): TsboxError => {
      try {
        new Store(root);
      } catch (err) {
        return err as TsboxError;
      }
      throw new Error(`${root} was taken as a store`);
    };
    expect(refusal(open).toLine()).toBe(`store(${open}): EPERM — the image store may be written by other users (mode 0777); chmod go-w ${open}, or set TSBOX_STORAGE to a directory only you may write`);
    chmodSync(open, 0o775);
    expect(() => new Store(open)).toThrow(/mode 0775/);
    // Nothing was made in it.
    expect(readdirSync(open)).toEqual([]);
    // Another user's: as root, a directory given away; as anyone else, root's /usr.
    let theirs = '/usr';
    if (process.getuid?.() === 0) {
      theirs = join(base, 'theirs');
      mkdirSync(theirs, { mode: 0o700 });
      chownSync(theirs, 65534, 65534);
    }
    expect(refusal(theirs).toLine()).toMatch(/the image store belongs to uid \d+, not to this user \(\d+\); set TSBOX_STORAGE to a directory of your own/);
    chmodSync(open, 0o700);
    expect(new Store(open).root).toBe(open);
  });

  it('takes a store that exists as it is only when the checks would change nothing (the one-call lstat)', () => {
    const { lstatMany } = loadNative().binding;
    const uid = process.getuid?.() ?? 0;
    const made = join(base, 'sound');
    new Store(made);
    const dirs = ['blobs', 'blobs/sha256', 'layers', 'layers/sha256', 'tmp', 'locks'];
    writeFileSync(join(made, 'a-file'), '');
    symlinkSync('blobs', join(made, 'a-link'));
    const got = lstatMany([made, ...dirs.map((d) => join(made, d)), join(made, 'a-file'), join(made, 'a-link'), join(made, 'missing')]);
    expect(got.slice(0, 7)).toEqual(Array(7).fill({ uid, mode: 0o700, isDirectory: true }));
    expect(got[7]).toMatchObject({ uid, isDirectory: false });
    expect(got[8]).toMatchObject({ uid, isDirectory: false });
    expect(got[9]).toBeNull();
    // A store made by hand, each time in a fresh root (a root is checked once per process).
    const byHand = (name: string, mode: (d: string) => number) => {
      const root = join(base, name);
      mkdirSync(root, { mode: 0o700 });
      for (const d of dirs) mkdirSync(join(root, d), { mode: mode(d) });
      for (const d of dirs) chmodSync(join(root, d), mode(d));
      return root;
    };
    // A top-level directory others may read is made private, as before.
    const loose = byHand('loose', (d) => (d === 'tmp' ? 0o755 : 0o700));
    new Store(loose);
    expect(statSync(join(loose, 'tmp')).mode & 0o777).toBe(0o700);
    // A nested one is left as it is, as before.
    const nested = byHand('nested', (d) => (d === 'layers/sha256' ? 0o755 : 0o700));
    new Store(nested);
    expect(statSync(join(nested, 'layers', 'sha256')).mode & 0o777).toBe(0o755);
    // A complete store whose root others may write, or with a file where a directory goes: refused as before.
    const complete = (name: string) => {
      const root = join(base, name);
      mkdirSync(root, { mode: 0o700 });
      for (const d of dirs) mkdirSync(join(root, d), { mode: 0o700 });
      return root;
    };
    for (const mode of [0o775, 0o757]) {
      const open = complete(`open-${mode.toString(8)}`);
      chmodSync(open, mode);
      expect(() => new Store(open)).toThrow(`may be written by other users (mode 0${mode.toString(8)})`);
    }
    const filed = join(base, 'filed');
    mkdirSync(filed, { mode: 0o700 });
    for (const d of dirs.filter((d) => !d.startsWith('blobs'))) mkdirSync(join(filed, d), { mode: 0o700 });
    writeFileSync(join(filed, 'blobs'), '');
    expect(() => new Store(filed)).toThrow(`${join(filed, 'blobs')}): EPERM — not a directory (a symlink?)`);
    // Another user's directory in it, at the top or below: refused (as root, who can give one away).
    if (uid === 0) {
      for (const at of ['locks', 'layers/sha256']) {
        const given = complete(`given-${at.replace('/', '-')}`);
        chownSync(join(given, at), 65534, 65534);
        expect(() => new Store(given)).toThrow(`${join(given, at)}): EPERM — the directory belongs to uid 65534, not to this user (0)`);
      }
    }
    // An answer that is not one per path (a mismatched addon) is no answer: the checks make what is missing.
    const partial = join(base, 'partial');
    mkdirSync(partial, { mode: 0o700 });
    const binding = loadNative().binding;
    const real = binding.lstatMany;
    (binding as { lstatMany: typeof real }).lstatMany = () => [{ uid, mode: 0o700, isDirectory: true }];
    try {
      new Store(partial);
    } finally {
      (binding as { lstatMany: typeof real }).lstatMany = real;
    }
    expect(readdirSync(partial).sort()).toEqual(['blobs', 'layers', 'locks', 'tmp']);
    // A symlink where a directory goes is refused, not followed: at the top and below it.
    for (const [name, at] of [['linked', 'layers'], ['linked-below', 'blobs/sha256']] as const) {
      const linked = join(base, name);
      mkdirSync(linked, { mode: 0o700 });
      for (const d of dirs.filter((d) => d !== at && !d.startsWith(`${at}/`))) mkdirSync(join(linked, d), { mode: 0o700 });
      symlinkSync(join(made, at), join(linked, at));
      expect(() => new Store(linked)).toThrow(`${join(linked, at)}): EPERM — not a directory (a symlink?)`);
    }
  });

  it("a failed commitLayer or index write leaves nothing in tmp/ and says what, where and what to do", async () => {
    const store = new Store(join(base, 'failing'));
    const layer = `sha256:${'e5'.repeat(32)}`;
    const info = { digest: layer, diffId: layer, size: 0, entries: 0, notes: [] };
    // An unpacked directory that is not there: the move fails.
    const gone = store.tempPath('unpack');
    const moved = (() => {
      try {
        store.commitLayer(gone, info);
      } catch (err) {
        return err as TsboxError;
      }
      throw new Error('commitLayer took a directory that is not there');
    })();
    expect(moved).toBeInstanceOf(TsboxError);
    expect(moved).toMatchObject({ step: 'store', errno: 2, path: gone });
    expect(moved.message).toContain(`move the unpacked layer ${layer} into place`);
    expect(moved.hint).toContain('TSBOX_STORAGE');
    // Its description cannot be written (a directory where it goes): the layer directory and the temporary file go.
    const unpacked = store.tempPath('unpack');
    mkdirSync(unpacked);
    writeFileSync(join(unpacked, 'f'), 'x');
    mkdirSync(`${store.layerDir(layer)}.json`);
    writeFileSync(join(`${store.layerDir(layer)}.json`, 'in-the-way'), '');
    expect(() => store.commitLayer(unpacked, info)).toThrow(`the description of the layer ${layer}`);
    expect(existsSync(store.layerDir(layer))).toBe(false);
    expect(existsSync(unpacked)).toBe(false);
    expect(readdirSync(join(store.root, 'tmp'))).toEqual([]);
    // The index, through the same atomic write: a tmp/ that is no directory.
    rmSync(join(store.root, 'tmp'), { recursive: true });
    writeFileSync(join(store.root, 'tmp'), '');
    const tagged = await store.tag({ name: 'localhost/x:1', digest: layer, config: layer, layers: [], created: new Date().toISOString() }).catch((err: unknown) => err as TsboxError);
    expect(tagged).toBeInstanceOf(TsboxError);
    expect(tagged).toMatchObject({ step: 'store', errno: 20 });
    expect(tagged.message).toContain(`write the image index ${join(store.root, 'images.json')}`);
    expect(tagged.hint).toContain('TSBOX_STORAGE');
  });

  it('checks a manifest or config read back against its digest', () => {
    const store = new Store(join(base, 'store'));
    const bytes = Buffer.from('{"schemaVersion":2}');
    const good = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    store.writeBlob(good, bytes);
    expect(store.readBlob(good).equals(bytes)).toBe(true);
    writeFileSync(store.blobPath(good), '{"schemaVersion":2,"evil":1}');
    expect(() => store.readBlob(good)).toThrow(`verify(${store.blobPath(good)}): the stored blob's digest is sha256:`);
  });
});

describe("an image's config", () => {
  const base = mkdtempSync(join(tmpdir(), 'tsbox-test-imageconfig-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('a StopSignal this host cannot send (SIGRTMIN+3) is left out with a notice, not a refusal', async () => {
    const store = new Store(join(base, 'store'));
    const blob = (b: Buffer) => {
      const d = `sha256:${createHash('sha256').update(b).digest('hex')}`;
      store.writeBlob(d, b);
      return d;
    };
    const layer = `sha256:${'d4'.repeat(32)}`;
    mkdirSync(store.layerDir(layer));
    writeFileSync(`${store.layerDir(layer)}.json`, JSON.stringify({ digest: layer, diffId: layer, size: 0, entries: 0, notes: [] }));
    for (const [tag, signal] of [['systemd', 'SIGRTMIN+3'], ['usr1', 'SIGUSR1']] as const) {
      const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['init'], StopSignal: signal }, rootfs: { type: 'layers', diff_ids: [layer] } })));
      await store.tag({ name: `localhost/${tag}:latest`, digest: config, config, layers: [layer], created: new Date().toISOString() });
    }
    const systemd = await imageBase({ image: 'localhost/systemd', pull: 'never' }, { store });
    expect(systemd.options.stopSignal).toBeUndefined();
    expect(systemd.notices).toEqual(['tsbox: note: the image\'s StopSignal "SIGRTMIN+3" is not a signal tsbox can send: stop sends SIGTERM (--stop-signal chooses another)']);
    // The options it gives are valid run options.
    expect(parseRunInput(['init'], systemd.options).options.stopSignal).toBeUndefined();
    const usr1 = await imageBase({ image: 'localhost/usr1', pull: 'never' }, { store });
    expect(usr1.options.stopSignal).toBe('SIGUSR1');
    expect(usr1.notices).toEqual([]);
  });
});

describe('an image whose layer is missing from the store', () => {
  const base = mkdtempSync(join(tmpdir(), 'tsbox-test-imagebroken-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('is named by what is wrong, by its short name too, and rmi removes it', async () => {
    const store = new Store(join(base, 'store'));
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
    store.writeBlob(digest, config);
    // Its layer's directory, but no description: never completed, or pruned.
    const layer = `sha256:${'f6'.repeat(32)}`;
    mkdirSync(store.layerDir(layer));
    await store.tag({ name: 'docker.io/library/broken:1', digest, config: digest, layers: [layer], created: new Date().toISOString() });
    for (const ref of ['broken:1', 'docker.io/library/broken:1']) {
      const never = await imageBase({ image: ref, pull: 'never' }, { store }).catch((err: unknown) => err as TsboxError);
      expect(never.toLine()).toBe(`image(${ref}): ENOENT — the image is in the store, but its layer ${layer} is not; pull it again (tsbox pull ${ref}), or remove it (tsbox rmi ${ref})`);
    }
    expect(findImage(store, 'broken:1')).toBeNull();
    expect(lookupImage(store, 'broken:1')?.name).toBe('docker.io/library/broken:1');
    expect((inspectImage('broken:1', store) as { layers: unknown[] }).layers).toEqual([{ digest: layer, missing: true }]);
    expect((await removeImage('broken:1', {}, store)).name).toBe('docker.io/library/broken:1');
    expect(store.images()).toEqual([]);
    await expect(removeImage('broken:1', {}, store)).rejects.toThrow('image(broken:1): ENOENT — no such image in the store');
  });
});

describe('pull refuses what it could not run, before fetching it', () => {
  const base = mkdtempSync(join(tmpdir(), 'tsbox-test-pullbounds-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A registry on loopback serving one manifest of `layers` (each `size` bytes); records the blobs asked for. */
  async function registryOf(layers: number, size: number): Promise<{ host: string; asked: string[]; close: () => void }> {
    const asked: string[] = [];
    const digests = Array.from({ length: layers }, (_, i) => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: digests } }));
    const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length }, layers: digests.map((digest) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size })) });
    const server = createServer((req, res) => {
      if (req.url === '/v2/') return res.writeHead(200).end();
      if (req.url === '/v2/app/manifests/latest') return res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
      asked.push(req.url ?? '');
      if (req.url === `/v2/app/blobs/${configDigest}`) return res.writeHead(200).end(config);
      res.writeHead(404).end();
    });
    const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
    return { host: `127.0.0.1:${port}`, asked, close: () => server.close() };
  }

  it('more layers than one overlay mount takes', async () => {
    const r = await registryOf(260, 100);
    try {
      const err = await pull(`${r.host}/app`, { store: new Store(join(base, 'many')) }).catch((e: unknown) => e as TsboxError);
      expect(err).toBeInstanceOf(TsboxError);
      expect((err as TsboxError).toLine()).toBe(`image_manifest(${r.host}/app:latest): E2BIG — the image has 260 layers; tsbox runs images of at most 250; the layers are mounted as one overlay, whose options must fit in a page; squash the image's layers`);
      expect(r.asked.filter((u) => u.includes('/blobs/'))).toEqual([]);
    } finally {
      r.close();
    }
  });

  it('a layer blob larger than an unpacked layer may be', async () => {
    const r = await registryOf(1, 2 ** 40);
    try {
      const err = await pull(`${r.host}/app`, { store: new Store(join(base, 'huge')) }).catch((e: unknown) => e as TsboxError);
      expect((err as TsboxError).toLine()).toMatch(/^image_manifest\(.* sha256:[a-f0-9]{64}\): EFBIG — the layer's blob is 1099511627776 bytes; tsbox takes at most 68719476736; a layer this large is refused before it is downloaded/);
      expect(r.asked).toEqual([]);
    } finally {
      r.close();
    }
  });
});

describe('unpacking a layer: what its directories cost', () => {
  const base = mkdtempSync(join(tmpdir(), 'tsbox-test-unpackdirs-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const { unpackLayer } = loadNative().binding;
  /** Unpacks the tar `entries` into a new directory; resolves with it, or rejects with the report as a TsboxError line. */
  async function unpack(tag: string, entries: Parameters<typeof tarOf>[0], more?: { maxDirBytes?: number; minFreeBytes?: number }): Promise<string> {
    const file = join(base, `${tag}.tar`);
    const dest = join(base, tag);
    writeFileSync(file, tarOf(entries));
    mkdirSync(dest);
    await unpackLayer(file, dest, 2 ** 30, 100_000, more).catch((err: unknown) => {
      throw new Error(fromNativeReport(err, 'unpack', 'layer').toLine());
    });
    return dest;
  }

  it('a directory repeated 20,000 times is kept once, with the last entry\'s mode, in the memory of one', async () => {
    // Each repeat was kept until the end (3.7 KB for a long path: 422 MB for
    // 100,000 of them); now one record, which a budget of 4 KB holds.
    const dir = `${'d'.repeat(40)}/${'e'.repeat(40)}/`;
    const entries = [{ name: dir.split('/')[0]! + '/', type: 'dir' as const }, ...Array.from({ length: 20_000 }, (_, i) => ({ name: dir, type: 'dir' as const, mode: i === 19_999 ? 0o751 : 0o700 }))];
    const dest = await unpack('repeated', entries, { maxDirBytes: 4096 });
    expect(statSync(join(dest, dir)).mode & 0o7777).toBe(0o751);
    expect(readdirSync(join(dest, dir.split('/')[0]!))).toEqual([dir.split('/')[1]]);
  });

  it('a layer whose directories would take more memory than allowed is refused, naming the limit', async () => {
    const entries = Array.from({ length: 100 }, (_, i) => ({ name: `dir-${String(i).padStart(3, '0')}/`, type: 'dir' as const }));
    // 40 records of 7 bytes of path and 96 of bookkeeping pass 4096 bytes.
    await expect(unpack('many', entries, { maxDirBytes: 4096 })).rejects.toThrow(
      "unpack(layer: dir-039): EFBIG — the layer's directories take more than 4096 bytes to keep until their modes are set; a layer with this many directories, or with paths this long, is refused as a likely archive bomb",
    );
    // Under the default limit (64 MiB), the same layer unpacks.
    expect(readdirSync(await unpack('many-default', entries))).toHaveLength(100);
  });

  it('a layer that would leave its filesystem with less free space than tsbox keeps is refused, saying so', async () => {
    await expect(unpack('full', [{ name: 'f', type: 'file', data: 'x' }], { minFreeBytes: 2 ** 52 })).rejects.toThrow(
      /^unpack\(layer: .*\/full\): ENOSPC — not enough space: the filesystem has \d+ bytes free, less than the 4503599627370496 tsbox leaves free; free space on that filesystem, or keep the image store on a larger one \(TSBOX_STORAGE\); a layer is stopped before it fills the disk$/,
    );
  });
});

describe("an image's export takes no more disk than its layers", () => {
  const base = mkdtempSync(join(tmpdir(), 'tsbox-test-flatten-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const { flattenLayers, unpackLayer } = loadNative().binding;
  /** Bytes of disk the tree at `dir` takes, each inode counted once (as du counts). */
  const diskUse = (dir: string, seen = new Set<number>()): number => {
    let n = 0;
    for (const name of readdirSync(dir)) {
      const st = lstatSync(join(dir, name));
      if (!seen.has(st.ino)) n += st.blocks * 512;
      seen.add(st.ino);
      if (st.isDirectory()) n += diskUse(join(dir, name), seen);
    }
    return n;
  };
  const data = (seed: number) => Buffer.from(Array.from({ length: 64 << 10 }, (_, i) => ((i * 31 + seed) % 251) + 1));
  const sparse = Buffer.alloc(8 << 20);
  sparse[0] = 1;
  const layer = join(base, 'layer');
  const layerReady = (async () => {
    writeFileSync(join(base, 'layer.tar'), tarOf([
      { name: 'f', type: 'file', data: data(1) },
      ...Array.from({ length: 50 }, (_, i) => ({ name: `l${i}`, type: 'link' as const, link: 'f' })),
      { name: 'sparse', type: 'file', data: sparse },
      { name: 'dir/', type: 'dir' },
      { name: 'dir/s0', type: 'link', link: 'sparse' },
      { name: 'dir/s1', type: 'link', link: 'sparse' },
      { name: 'g', type: 'file', data: data(2) },
    ]));
    mkdirSync(layer);
    await unpackLayer(join(base, 'layer.tar'), layer, 2 ** 30, 1000);
  })();
  /** Flattens the layer into a new directory; resolves with it, or rejects with the report as a TsboxError line. */
  async function flatten(tag: string, more?: { maxBytes?: number; minFreeBytes?: number }): Promise<string> {
    await layerReady;
    const dest = join(base, tag);
    mkdirSync(dest);
    await flattenLayers([layer], dest, more).catch((err: unknown) => {
      throw new Error(fromNativeReport(err, 'image_export', 'rootfs').toLine());
    });
    return dest;
  }

  it("keeps the layer's hard links (of its own copies) and holes", async () => {
    // Written whole, one copy per link, the layer's 8.3 MB took 27 MB here (the review's: 4.9 MB, then 302 MB).
    const dest = await flatten('links');
    const f = statSync(join(dest, 'f'));
    expect(f.nlink).toBe(51);
    for (const l of ['l0', 'l49']) expect(statSync(join(dest, l)).ino).toBe(f.ino);
    expect(f.ino).not.toBe(statSync(join(layer, 'f')).ino);
    expect(statSync(join(dest, 'dir', 's1')).ino).toBe(statSync(join(dest, 'sparse')).ino);
    const s = statSync(join(dest, 'sparse'));
    expect(s.size).toBe(8 << 20);
    expect(s.blocks * 512).toBeLessThan(1 << 20);
    expect(readFileSync(join(dest, 'dir', 's0')).equals(sparse)).toBe(true);
    expect(readFileSync(join(dest, 'l7')).equals(data(1))).toBe(true);
    expect(diskUse(dest)).toBeLessThanOrEqual(diskUse(layer));
    // What it writes is what the layer holds (f, g and the sparse file's few blocks of data), not 51 copies of f and 3 of 8 MiB.
    await flatten('under-cap', { maxBytes: 4 * 65536 });
  });

  it('an export that would write more than its cap, or fill its filesystem, is refused, saying so', async () => {
    await expect(flatten('over-cap', { maxBytes: 100_000 })).rejects.toThrow(/^image_export\(rootfs: .*\/layer\/\w+\): EFBIG — the export would write more than 100000 bytes of file data; an image this large is not exported: a likely bomb$/);
    await expect(flatten('full', { minFreeBytes: 2 ** 52 })).rejects.toThrow(
      /^image_export\(rootfs: .*\/full\): ENOSPC — not enough space: the filesystem has \d+ bytes free, less than the 4503599627370496 tsbox leaves free; free space on that filesystem, or export to a larger one; an export is stopped before it fills the disk$/,
    );
  });
});
