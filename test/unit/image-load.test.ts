/**
 * `tsbox load` from a directory someone else may write while it is read: a
 * blob is read once, and what was checked against its digest is what is
 * stored. A changed-under-us file is simulated by replacing a blob's
 * content whenever it is opened a second time (by any of fs's opening calls).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it, vi } from 'vitest';

import { TsboxError } from '../../ts/errors.js';

const swaps = new Map<string, { opens: number; then: Buffer }>();

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const opened = (path: unknown) => {
    const s = typeof path === 'string' ? swaps.get(path) : undefined;
    if (s && ++s.opens === 2) fs.writeFileSync(path as string, s.then);
  };
  const wrap =
    <F extends (...args: never[]) => unknown>(f: F) =>
    (...args: Parameters<F>) => {
      opened(args[0]);
      return f(...args);
    };
  const patched = { ...fs, openSync: wrap(fs.openSync), readFileSync: wrap(fs.readFileSync), createReadStream: wrap(fs.createReadStream) };
  return { ...patched, default: patched };
});

const { loadArchive } = await import('../../ts/image/load.js');
const { Store } = await import('../../ts/image/store.js');

const work = mkdtempSync(join(tmpdir(), 'tsbox-test-load-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An OCI layout of one image without layers; returns the blobs' paths and the manifest's digest. */
function layout(dir: string, cmd: string): { manifest: string; digest: string; blob: (b: Buffer) => string } {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const blob = (b: Buffer) => {
    const d = sha(b);
    writeFileSync(join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return d;
  };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: [cmd] }, rootfs: { type: 'layers', diff_ids: [] } }));
  const c = blob(config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: c, size: config.length }, layers: [] }));
  const digest = blob(manifest);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'swapped' } }] }));
  return { manifest: join(dir, 'blobs', 'sha256', digest.slice(7)), digest, blob };
}

describe('load from a directory', () => {
  it('stores the bytes it checked: a manifest replaced after it was first opened changes nothing', async () => {
    const dir = join(work, 'layout');
    const { manifest, digest, blob } = layout(dir, 'good');
    // What an attacker puts there once the digest was checked: another valid manifest, whose config is in the layout too.
    const evilConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['evil'] }, rootfs: { type: 'layers', diff_ids: [] } }));
    const ec = blob(evilConfig);
    const evil = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: ec, size: evilConfig.length }, layers: [] }));
    swaps.set(manifest, { opens: 0, then: evil });
    const store = new Store(join(work, 'store'));
    const [record] = await loadArchive(dir, { store });
    expect(record!.digest).toBe(digest);
    // Every blob in the store is what its name says, and the image is the good one.
    for (const hex of readdirSync(join(store.root, 'blobs', 'sha256'))) expect(sha(readFileSync(join(store.root, 'blobs', 'sha256', hex)))).toBe(`sha256:${hex}`);
    expect(JSON.parse(store.readBlob(record!.config).toString()).config.Cmd).toEqual(['good']);
    expect(readdirSync(join(store.root, 'tmp'))).toEqual([]);
  });

  it("an archive's names reach an error escaped: they cannot drive the terminal", async () => {
    const dir = join(work, 'named');
    mkdirSync(dir);
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify([{ Config: 'c\u001b[2J\n\u202e.json', RepoTags: ['x:1'], Layers: [] }]));
    const err = await loadArchive(dir, { store: new Store(join(work, 'store-named')) }).catch((e: unknown) => e as TsboxError);
    expect(err).toBeInstanceOf(TsboxError);
    expect((err as TsboxError).toLine()).toBe('load(c\\x1b[2J\\x0a\\u{202e}.json): the archive has no config c\\x1b[2J\\x0a\\u{202e}.json; the archive is incomplete');
  });

  it("a layout's media types reach an error escaped: an OSC in index.json or in a manifest's config", async () => {
    const osc = '\u001b]0;PWNED\u0007\u009b2J';
    const shown = '\\x1b]0;PWNED\\x07\\x9b2J';
    const dir = join(work, 'mediatype');
    const { digest, blob } = layout(dir, 'x');
    const entry = (d: string, size: number, mediaType: string) => JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType, digest: d, size, annotations: { 'org.opencontainers.image.ref.name': 'osc' } }] });
    // Its parameters (after a `;`) are no part of a media type.
    writeFileSync(join(dir, 'index.json'), entry(digest, 1, osc));
    const store = new Store(join(work, 'store-mediatype'));
    const first = await loadArchive(dir, { store }).catch((e: unknown) => e as TsboxError);
    expect(first).toBeInstanceOf(TsboxError);
    expect((first as TsboxError).toLine()).toBe(`image_manifest(${dir}): unsupported manifest media type \\x1b]0; tsbox reads OCI image manifests and indexes and Docker v2 schema 2 manifests and lists (not schema 1)`);
    // The manifest's own config descriptor, once the index's entry is sound.
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: osc, digest, size: 1 }, layers: [] }));
    writeFileSync(join(dir, 'index.json'), entry(blob(manifest), manifest.length, 'application/vnd.oci.image.manifest.v1+json'));
    const second = await loadArchive(dir, { store }).catch((e: unknown) => e as TsboxError);
    expect((second as TsboxError).toLine()).toBe(`image_manifest(${dir}): unsupported config media type ${shown}; this is not a container image (an artifact?)`);
    for (const e of [first, second]) expect((e as TsboxError).toLine()).not.toMatch(/\p{Cc}/u);
  });
});
