/** Image references, the registry auth challenge, auth files and the platform choice (issue 18). */
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import https, { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterAll, describe, expect, it } from 'vitest';

import { credentialsFor, parseChallenges } from '../../ts/image/auth.js';
import { formatReference, isLoopback, parseReference, registryHost } from '../../ts/image/reference.js';
import { choosePlatform, documentKind } from '../../ts/image/spec.js';
import { realmGetsCredentials, Registry, sameOrigin } from '../../ts/image/registry.js';
import { findImage, imageBase, lookupImage } from '../../ts/image/run.js';
import { inspectImage, removeImage } from '../../ts/image/manage.js';
import { pull } from '../../ts/image/pull.js';
import { Store } from '../../ts/image/store.js';
import { fromNativeReport, TsboxError } from '../../ts/errors.js';
import { loadNative } from '../../ts/native.js';
import { parseRunInput } from '../../ts/config/schema.js';
import { loadArchive } from '../../ts/image/load.js';
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

  it('knows loopback however it is written, as the requests read it', () => {
    for (const h of ['127.1:45001', '0x7f.1', '2130706433:80', '017700000001', '127.255.255.254', 'LOCALHOST:5000', '[0:0:0:0:0:0:0:1]:5000', '[::ffff:127.0.0.1]:5000', '[::ffff:7f01:203]']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['127.0.0.1.nip.io', '0.0.0.0:5000', '[::]:5000', '[::2]', '[::ffff:10.0.0.1]', '126.255.255.255', '0x80.1', 'localhost.example', 'localhostx', 'a b', '']) expect(isLoopback(h), h).toBe(false);
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

  it('Basic credentials go to a token realm when both it and the challenge are https, or both are loopback, and never else', () => {
    const gets = (realm: string, challenge: string) => realmGetsCredentials(new URL(realm), new URL(challenge));
    expect(gets('https://auth.docker.io/token', 'https://registry-1.docker.io/v2/')).toBe(true);
    expect(gets('http://127.0.0.1:5001/token', 'http://127.0.0.1:5000/v2/')).toBe(true);
    expect(gets('https://127.0.0.1:5001/token', 'http://[::1]:5000/v2/')).toBe(true);
    expect(gets('http://127.0.0.1:5001/token', 'http://127.1:5000/v2/')).toBe(true);
    // A challenge over plain http may be anyone's on the way: not to an https realm either.
    expect(gets('https://auth.example/token', 'http://r.example:5000/v2/')).toBe(false);
    expect(gets('https://127.0.0.1:5001/token', 'http://r.example:5000/v2/')).toBe(false);
    expect(gets('https://auth.example/token', 'http://127.0.0.1:5000/v2/')).toBe(false);
    // A realm over plain http would carry them in the clear.
    expect(gets('http://auth.example/token', 'https://r.example/v2/')).toBe(false);
    expect(gets('http://127.0.0.1:5001/token', 'https://r.example/v2/')).toBe(false);
    expect(gets('http://auth.example/token', 'http://127.0.0.1:5000/v2/')).toBe(false);
  });

  /** A certificate for 127.0.0.1 that nothing trusts (test only; openssl req -x509, EC P-256, until 2126). */
  const UNTRUSTED = {
    key: [
    '-----BEGIN PRIVATE KEY-----',
    'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZ7uCQ3fRre8zPnu2',
    'oW1O5KGPrrCSaPDPVYAJG9zD5GOhRANCAARkwk1FIsQ15oq6jmb8UaoCHqCDx5sY',
    'kk97kzj5sXbUBEDUSZ5wrX1ubNOQECee5jxnMO7sI60pIERFgwY3lPS0',
    '-----END PRIVATE KEY-----',
  ].join('\n'),
    cert: [
    '-----BEGIN CERTIFICATE-----',
    'MIIBpjCCAUygAwIBAgIUE3eH7gjKVfTSsN2zReNI9XFV/4AwCgYIKoZIzj0EAwIw',
    'HzEdMBsGA1UEAwwUdHNib3gtdGVzdC11bnRydXN0ZWQwIBcNMjYxMjA1MDkzMjI4',
    'WhgPMjEyNjExMTEwOTMyMjhaMB8xHTAbBgNVBAMMFHRzYm94LXRlc3QtdW50cnVz',
    'dGVkMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZMJNRSLENeaKuo5m/FGqAh6g',
    'g8ebGJJPe5M4+bF21ARA1EmecK19bmzTkBAnnuY8ZzDu7COtKSBERYMGN5T0tKNk',
    'MGIwHQYDVR0OBBYEFPbekTsHScr2y30r9ZJdAYd/LAdQMB8GA1UdIwQYMBaAFPbe',
    'kTsHScr2y30r9ZJdAYd/LAdQMA8GA1UdEwEB/wQFMAMBAf8wDwYDVR0RBAgwBocE',
    'fwAAATAKBggqhkjOPQQDAgNIADBFAiEAmAUxDtqWgVUrVarKdY65F7TtL8zb6jpf',
    '05V1y6nFLKYCIEggoRs4f82p78qT3PN90v7TqByAJ9nTrJRYnxOE4HDA',
    '-----END CERTIFICATE-----',
  ].join('\n'),
  };
  const listenOn = (server: Server | HttpsServer) => new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  const ALICE = { username: 'alice', password: 's3cret' };

  /** A token service over https that records the Authorization headers it is sent and hands out a token to anyone. */
  async function realmServer(): Promise<{ port: number; seen: (string | undefined)[]; close: () => void }> {
    const seen: (string | undefined)[] = [];
    const server = createHttpsServer(UNTRUSTED, (req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(req.headers.authorization ? 200 : 401, { 'content-type': 'application/json' }).end(req.headers.authorization ? '{"token":"T0KEN"}' : '{}');
    });
    return { port: await listenOn(server), seen, close: () => server.close() };
  }

  it('a challenge over plain http from a registry that is not loopback sends no credentials to its realm, https or not', async () => {
    const realm = await realmServer();
    // 0.0.0.0 reaches this machine (Linux takes it as a local address) but is no loopback name: it stands in for a remote registry, with no traffic off the machine.
    const registry = createServer((_req, res) => res.writeHead(401, { 'www-authenticate': `Bearer realm="https://127.0.0.1:${realm.port}/token",service="test"` }).end());
    const port = await listenOn(registry);
    // The realm's certificate trusted, as a real token service's is: what is tested is the choice to send, not the certificate check.
    const agent = https.globalAgent.options;
    agent.ca = UNTRUSTED.cert;
    try {
      const err = await new Registry(`0.0.0.0:${port}`, 'app', { insecure: [`0.0.0.0:${port}`], credentials: ALICE }).connect().catch((e: unknown) => e as TsboxError);
      expect(realm.seen).toEqual([undefined]);
      expect(err).toBeInstanceOf(TsboxError);
      expect((err as TsboxError).toLine()).toMatch(/^registry\(https:\/\/127\.0\.0\.1:\d+\/token\?service=test&scope=repository%3Aapp%3Apull\): EACCES — the token service answered 401; the credentials were not sent: the registry's challenge came over plain http, and tsbox sends credentials over http only between loopback addresses; serve the registry and its token service over https$/);
    } finally {
      delete agent.ca;
      realm.close();
      registry.close();
    }
  });

  it("an insecure registry's unchecked certificate is its own host's only: its token realm's is checked", async () => {
    const realm = await realmServer();
    const registry = createHttpsServer(UNTRUSTED, (_req, res) => res.writeHead(401, { 'www-authenticate': `Bearer realm="https://127.0.0.1:${realm.port}/token"` }).end());
    const port = await listenOn(registry);
    try {
      // Loopback, and so insecure without being named so: its own certificate goes unchecked.
      const err = await new Registry(`127.0.0.1:${port}`, 'app', { credentials: ALICE }).connect().catch((e: unknown) => e as TsboxError);
      expect(err).toBeInstanceOf(TsboxError);
      expect((err as TsboxError).path).toBe(`https://127.0.0.1:${realm.port}/token?scope=repository%3Aapp%3Apull`);
      expect((err as TsboxError).message).toMatch(/self.signed certificate/);
      expect(realm.seen).toEqual([]);
    } finally {
      realm.close();
      registry.close();
    }
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

describe("a registry's text in an error", () => {
  it('a token realm with a control character (an 8-bit CSI; Node refuses a 7-bit ESC in a header) is shown escaped', async () => {
    const { createServer: createTcpServer } = await import('node:net');
    const realm = '\u009b2J\u009b]0;PWNED';
    // A raw answer: node:http would not send such a header.
    const server = createTcpServer((c) => c.once('data', () => c.end(Buffer.from(`HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer realm="${realm}"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, 'latin1'))));
    const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
    try {
      const err = await new Registry(`127.0.0.1:${port}`, 'app', { credentials: null }).connect().catch((e: unknown) => e as TsboxError);
      expect(err).toBeInstanceOf(TsboxError);
      expect((err as TsboxError).toLine()).toBe(`registry(127.0.0.1:${port}): the registry's token realm is not a URL: \\x9b2J\\x9b]0;PWNED`);
    } finally {
      server.close();
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
    const configBytes = Buffer.from('{"config":{}}');
    const config = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
    store.writeBlob(config, configBytes);
    rmSync(join(store.root, 'tmp'), { recursive: true });
    writeFileSync(join(store.root, 'tmp'), '');
    const tagged = await store.tag({ name: 'localhost/x:1', digest: layer, config, layers: [], created: new Date().toISOString() }).catch((err: unknown) => err as TsboxError);
    expect(tagged).toBeInstanceOf(TsboxError);
    expect(tagged).toMatchObject({ step: 'store', errno: 20 });
    expect(tagged.message).toContain(`write the image index ${join(store.root, 'images.json')}`);
    expect(tagged.hint).toContain('TSBOX_STORAGE');
  });

  it('finds an image by a digest prefix only when the prefix is one image\'s, and says so when it is not', async () => {
    const store = new Store(join(base, 'prefix'));
    // Two manifests whose digests share their first 14 hex digits; a third image names the first again.
    const one = `sha256:${'ab'.repeat(7)}${'11'.repeat(25)}`;
    const two = `sha256:${'ab'.repeat(7)}${'22'.repeat(25)}`;
    const configBytes = Buffer.from('{"config":{}}');
    const config = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
    store.writeBlob(config, configBytes);
    const record = (name: string, digest: string) => ({ name, digest, config, layers: [], created: new Date().toISOString() });
    for (const r of [record('localhost/one:1', one), record('localhost/two:1', two), record('localhost/one-again:1', one)]) await store.tag(r);
    const short = 'ab'.repeat(6);
    const err = (() => {
      try {
        store.find(short);
      } catch (e) {
        return e as TsboxError;
      }
      throw new Error('an ambiguous prefix was taken');
    })();
    expect(err).toBeInstanceOf(TsboxError);
    expect(err.toLine()).toBe(`image(${short}): the digest prefix matches 2 images; give more digits of the digest (\`tsbox images --format json\` shows them whole), or the image's name`);
    expect(() => store.find(`sha256:${short}`)).toThrow('the digest prefix matches 2 images');
    // The look-up of the CLI and the API refuses it too, rather than acting on either image.
    expect(() => lookupImage(store, short)).toThrow('the digest prefix matches 2 images');
    // More digits tell them apart; two names of one manifest are one image.
    expect(store.find(`${'ab'.repeat(7)}11`)?.digest).toBe(one);
    expect(store.find(`sha256:${'ab'.repeat(7)}22`)?.name).toBe('localhost/two:1');
    expect(store.find(two)?.name).toBe('localhost/two:1');
    expect(store.find('cd'.repeat(6))).toBeNull();
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
  it("a record keeps its config's run part, and a launch takes it from there; a record written before reads the blob", async () => {
    const store = new Store(join(base, 'store-runconfig'));
    const layer = `sha256:${'d5'.repeat(32)}`;
    mkdirSync(store.layerDir(layer));
    writeFileSync(`${store.layerDir(layer)}.json`, JSON.stringify({ digest: layer, diffId: layer, size: 0, entries: 0, notes: [] }));
    const run = { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo hi'], Env: ['A=1', 'PATH=/bin'], User: '7:7', WorkingDir: '/srv', ExposedPorts: { '80/tcp': {} } };
    const bytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: run, rootfs: { type: 'layers', diff_ids: [layer] } }));
    const config = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    store.writeBlob(config, bytes);
    await store.tag({ name: 'localhost/kept:1', digest: config, config, layers: [layer], created: new Date().toISOString() });
    const indexPath = join(store.root, 'images.json');
    const stored = JSON.parse(readFileSync(indexPath, 'utf8')) as { images: Record<string, unknown>[] };
    expect(stored.images[0]!.runConfig).toEqual(run);
    // Neither inspect nor the list shows the store's copy: inspect shows the config itself.
    const shown = inspectImage('localhost/kept:1', store) as Record<string, unknown>;
    expect(shown).not.toHaveProperty('runConfig');
    expect((shown.config as { config: unknown }).config).toEqual(run);
    const expected = { entrypoint: ['/bin/sh', '-c'], defaultCommand: ['echo hi'], env: { A: '1', PATH: '/bin' }, user: '7:7', cwd: '/srv', expose: ['80/tcp'] };
    const seen = (b: Awaited<ReturnType<typeof imageBase>>) => ({ entrypoint: b.entrypoint, defaultCommand: b.defaultCommand, env: b.options.env, user: b.options.user, cwd: b.options.cwd, expose: b.options.expose });
    // The launch reads no blob: with the config blob gone it still has the config.
    rmSync(store.blobPath(config));
    expect(seen(await imageBase({ image: 'localhost/kept:1', pull: 'never' }, { store }))).toEqual(expected);
    // A record from before runConfig was kept: the blob is read, and checked against its digest.
    const { runConfig: _, ...older } = stored.images[0]!;
    writeFileSync(indexPath, JSON.stringify({ version: 1, images: [{ ...older, name: 'localhost/older:1' }] }));
    const missing = await imageBase({ image: 'localhost/older:1', pull: 'never' }, { store }).catch((err: unknown) => err as TsboxError);
    expect(missing).toBeInstanceOf(TsboxError);
    expect((missing as TsboxError).toLine()).toContain(`read the blob ${config}`);
    store.writeBlob(config, bytes);
    expect(seen(await imageBase({ image: 'localhost/older:1', pull: 'never' }, { store }))).toEqual(expected);
    store.writeBlob(config, Buffer.from(`${bytes.toString()} `));
    const changed = await imageBase({ image: 'localhost/older:1', pull: 'never' }, { store }).catch((err: unknown) => err as TsboxError);
    expect((changed as TsboxError).toLine()).toContain(`the stored blob's digest is sha256:`);
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

describe("a layer's diff_id is checked for every image that names it, not only the one that brought it", () => {
  const base = mkdtempSync(join(tmpdir(), 'tsbox-test-diffid-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const tar = tarOf([{ name: 'etc/', type: 'dir' }, { name: 'etc/real', type: 'file', data: 'the layer as it is\n' }]);
  const gz = gzipSync(tar);
  const layer = sha(gz);
  const real = sha(tar);
  const lie = `sha256:${'ab'.repeat(32)}`;
  const refusal = (claimed: string) => `verify(${layer}): the layer's uncompressed digest is ${real}, not the config's ${claimed}; the image is inconsistent: it is refused`;

  /** The documents of an image of `layers` (each this one blob) whose config claims `diffIds`. */
  function image(diffIds: string[], cmd: string) {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: [cmd] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: diffIds.map(() => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: gz.length })) }));
    return { config, manifest };
  }

  /** An OCI layout of that image, tagged `tag`. */
  function layout(name: string, tag: string, diffIds: string[]): string {
    const dir = join(base, name);
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    const { config, manifest } = image(diffIds, tag);
    for (const b of [gz, config, manifest]) writeFileSync(join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
    writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }));
    return dir;
  }

  it('load: an image claiming another diff_id for a layer the store has is refused, as it is when the store has not', async () => {
    const c = layout('c', 'c', [real]);
    const b = layout('b', 'b', [lie]);
    // B alone: its unpacking finds the lie.
    const alone = new Store(join(base, 'store-b'));
    expect(((await loadArchive(b, { store: alone }).catch((e: unknown) => e)) as TsboxError).toLine()).toBe(refusal(lie));
    // C, then B: the layer is there, unpacked for C; B's claim is checked all the same.
    const store = new Store(join(base, 'store-cb'));
    const [cRecord] = await loadArchive(c, { store });
    const err = await loadArchive(b, { store }).catch((e: unknown) => e as TsboxError);
    expect(err).toBeInstanceOf(TsboxError);
    expect((err as TsboxError).toLine()).toBe(refusal(lie));
    expect(store.images().map((i) => i.name)).toEqual([cRecord!.name]);
    expect(() => inspectImage('localhost/b:latest', store)).toThrow('no such image in the store');
    expect(store.layerInfo(layer)?.diffId).toBe(real);
    // A second image that tells the truth about it shares it.
    const [again] = await loadArchive(layout('c2', 'c2', [real]), { store });
    expect(again!.layers).toEqual([layer]);
  });

  /** A registry on loopback serving `app:TAG` for each of `images`. */
  async function registryOf(images: Record<string, string[]>): Promise<{ host: string; close: () => void }> {
    const blobs = new Map<string, Buffer>([[layer, gz]]);
    const manifests = new Map<string, Buffer>();
    for (const [tag, diffIds] of Object.entries(images)) {
      const { config, manifest } = image(diffIds, tag);
      blobs.set(sha(config), config);
      manifests.set(tag, manifest);
    }
    const server = createServer((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/') return res.writeHead(200).end();
      const m = manifests.get(url.replace('/v2/app/manifests/', ''));
      if (m) return res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(m);
      const b = blobs.get(url.replace('/v2/app/blobs/', ''));
      if (b) return res.writeHead(200).end(b);
      res.writeHead(404).end();
    });
    const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
    return { host: `127.0.0.1:${port}`, close: () => server.close() };
  }

  it('pull: the same, and a manifest naming one layer twice with two diff_ids is checked for both', async () => {
    const r = await registryOf({ c: [real], b: [lie], twice: [real, lie] });
    try {
      const store = new Store(join(base, 'store-pull'));
      await pull(`${r.host}/app:c`, { store });
      const err = await pull(`${r.host}/app:b`, { store }).catch((e: unknown) => e as TsboxError);
      expect(err).toBeInstanceOf(TsboxError);
      expect((err as TsboxError).toLine()).toBe(refusal(lie));
      // Into an empty store: the second listing (once dropped as a duplicate) is refused.
      const fresh = new Store(join(base, 'store-twice'));
      expect(((await pull(`${r.host}/app:twice`, { store: fresh }).catch((e: unknown) => e)) as TsboxError).toLine()).toBe(refusal(lie));
      expect(fresh.images()).toEqual([]);
      expect(store.images().map((i) => i.name)).toEqual([`${r.host}/app:c`]);
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
