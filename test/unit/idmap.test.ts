// computeMaps, rootlessMaps, formatMap and writeMaps (ts/idmap/index.ts). No user namespace is
// created: writeMaps is pointed at a pid that cannot exist, and every write it
// attempts is recorded so the test can prove it touched nothing outside /proc.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { ROOT_MAP_BASE, ROOT_MAP_SIZE } from '../../ts/config/defaults.js';
import { TsboxError } from '../../ts/errors.js';
import { allocateRootMaps, computeMaps, formatMap, parseMapping, registerExplicitMaps, rootlessMaps, writeMaps, type IdMaps } from '../../ts/idmap/index.js';
import { loadNative } from '../../ts/native.js';

/** Every writeFileSync call made through node:fs, and whether to really perform it. */
const fsSpy = vi.hoisted(() => ({ writes: [] as { path: string; data: string }[], passThrough: true }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const writeFileSync = ((file: Parameters<typeof real.writeFileSync>[0], data: Parameters<typeof real.writeFileSync>[1], ...rest: unknown[]) => {
    fsSpy.writes.push({ path: String(file), data: String(data) });
    if (fsSpy.passThrough) return (real.writeFileSync as (...a: unknown[]) => void)(file, data, ...rest);
  }) as typeof real.writeFileSync;
  return { ...real, default: { ...real, writeFileSync }, writeFileSync };
});

beforeEach(() => {
  fsSpy.writes.length = 0;
  fsSpy.passThrough = true;
});
afterEach(() => {
  fsSpy.passThrough = true;
});

/** A pid above the largest pid_max Linux allows (2^22), so no process can have it. */
function impossiblePid(): number {
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  expect(pidMax).toBeLessThanOrEqual(2 ** 22);
  return 2 ** 22 + 12345;
}

/** The single mapping an unprivileged caller can write itself. */
const single = (uid: number, gid: number): IdMaps => ({
  uid: [{ containerId: 0, hostId: uid, size: 1 }],
  gid: [{ containerId: 0, hostId: gid, size: 1 }],
  setgroups: 'deny',
  via: 'direct',
});
const ROOT_RANGE = (): IdMaps => ({
  uid: [{ containerId: 0, hostId: ROOT_MAP_BASE, size: ROOT_MAP_SIZE }],
  gid: [{ containerId: 0, hostId: ROOT_MAP_BASE, size: ROOT_MAP_SIZE }],
  setgroups: 'allow',
  via: 'direct',
});

describe('computeMaps and rootlessMaps', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsbox-unit-subid-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the root block inside 0x70000000..0x80000000, away from host ids', () => {
    expect(ROOT_MAP_BASE).toBe(0x7000_0000);
    expect(ROOT_MAP_SIZE).toBe(65536);
    expect(ROOT_MAP_BASE + 4096 * ROOT_MAP_SIZE).toBe(0x8000_0000);
  });

  it("gives no maps for userns 'host'", () => {
    expect(computeMaps({ userns: 'host' }, 'id', { uid: 0, gid: 0, name: 'root' })).toBeNull();
  });

  it('passes explicit maps through for root, registered, and a self-only explicit map for others', () => {
    const uid = [{ containerId: 0, hostId: 5000, size: 10 }];
    const gid = [{ containerId: 0, hostId: 6000, size: 10 }];
    const registered: unknown[] = [];
    const release = () => {};
    const fake = { allocate: () => { throw new Error('not asked'); }, register: (u: unknown, g: unknown, id: string) => (registered.push([u, g, id]), { release }) };
    expect(computeMaps({ userns: 'private', uidMap: uid, gidMap: gid }, 'id', { uid: 0, gid: 0, name: 'root' }, fake)).toEqual({ uid, gid, setgroups: 'allow', via: 'direct', release });
    expect(registered).toEqual([[uid, gid, 'id']]);
    const self = [{ containerId: 0, hostId: 1000, size: 1 }];
    expect(computeMaps({ userns: 'private', uidMap: self, gidMap: [{ containerId: 0, hostId: 1001, size: 1 }] }, 'id', { uid: 1000, gid: 1001, name: 'u' })).toEqual(single(1000, 1001));
  });

  it('maps self to 0 plus the subordinate range when the user has one (by name or uid)', () => {
    writeFileSync(join(dir, 'subuid'), 'other:1:2\nalice:200000:65536\n');
    writeFileSync(join(dir, 'subgid'), '1000:300000:70000\n');
    const m = rootlessMaps({ uid: 1000, gid: 1000, name: 'alice' }, { subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') });
    if (m.via === 'newidmap') {
      expect(m.uid).toEqual([{ containerId: 0, hostId: 1000, size: 1 }, { containerId: 1, hostId: 200000, size: 65535 }]);
      expect(m.gid).toEqual([{ containerId: 0, hostId: 1000, size: 1 }, { containerId: 1, hostId: 300000, size: 65535 }]);
      expect(m.notice).toBeUndefined();
    } else {
      // newuidmap is not installed on this machine: the single mapping, with the reason.
      expect(m.notice).toMatch(/newuidmap\/newgidmap are not installed/);
    }
  });

  it('falls back to the single mapping with a notice naming why', () => {
    const m = rootlessMaps({ uid: 1000, gid: 1001, name: 'bob' }, { subuid: join(dir, 'none'), subgid: join(dir, 'none') });
    expect({ ...m, notice: undefined }).toEqual({ ...single(1000, 1001), notice: undefined });
    expect(m.notice).toBe(
      'tsbox: note: only your own uid maps into the container (bob has no range in /etc/subuid and /etc/subgid); other ids appear as nobody, and -u with another user fails: for 65536 ids, add one: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 bob',
    );
  });

  it('parses CONTAINER:HOST:SIZE and refuses malformed or empty lines', () => {
    expect(parseMapping('0:100000:65536')).toEqual({ containerId: 0, hostId: 100000, size: 65536 });
    expect(parseMapping('0:1:0')).toBeUndefined();
    expect(parseMapping('a:b:c')).toBeUndefined();
    expect(parseMapping('0:4294967295:2')).toBeUndefined();
  });
});

describe('formatMap', () => {
  it('writes one "inside outside count" line per mapping, each newline-terminated', () => {
    expect(formatMap([{ containerId: 0, hostId: 1000, size: 1 }])).toBe('0 1000 1\n');
    expect(
      formatMap([
        { containerId: 0, hostId: ROOT_MAP_BASE, size: ROOT_MAP_SIZE },
        { containerId: 65536, hostId: 100000, size: 10 },
      ]),
    ).toBe(`0 ${ROOT_MAP_BASE} ${ROOT_MAP_SIZE}\n65536 100000 10\n`);
  });

  it('formats ids in decimal, as the kernel parses them', () => {
    expect(formatMap(ROOT_RANGE().uid)).toBe('0 1879048192 65536\n');
  });

  it('gives an empty string for an empty map', () => {
    expect(formatMap([])).toBe('');
  });
});

describe('writeMaps', () => {
  it('fails at setgroups for a pid that does not exist, with the /proc path, and writes nothing else', () => {
    const pid = impossiblePid();
    const trace: string[] = [];
    let err: unknown;
    try {
      writeMaps(pid, single(1000, 1000), (l) => trace.push(l));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsboxError);
    const e = err as TsboxError;
    expect(e.step).toBe('setgroups');
    expect(e.errno).toBe(2);
    expect(e.path).toBe(`/proc/${pid}/setgroups`);
    expect(e.message).toContain(`/proc/${pid}/setgroups`);
    expect(e.message).toContain('ENOENT');
    expect(e.hint).toBeTruthy();
    expect(e.exitCode).toBe(125);
    expect(e.cause).toBeDefined();
    // Only the one failed attempt, under /proc/<pid>/; nothing traced as done.
    expect(fsSpy.writes).toEqual([{ path: `/proc/${pid}/setgroups`, data: 'deny' }]);
    expect(trace).toEqual([]);
  });

  it('writes setgroups, then uid_map, then gid_map, all under /proc/<pid>/', () => {
    fsSpy.passThrough = false; // record only: nothing reaches the filesystem
    const pid = impossiblePid();
    const maps: IdMaps = {
      uid: [{ containerId: 0, hostId: 1000, size: 1 }],
      gid: [
        { containerId: 0, hostId: 2000, size: 1 },
        { containerId: 1, hostId: 300000, size: 65535 },
      ],
      setgroups: 'deny',
    };
    const trace: string[] = [];
    writeMaps(pid, maps, (l) => trace.push(l));
    expect(fsSpy.writes).toEqual([
      { path: `/proc/${pid}/setgroups`, data: 'deny' },
      { path: `/proc/${pid}/uid_map`, data: '0 1000 1\n' },
      { path: `/proc/${pid}/gid_map`, data: '0 2000 1\n1 300000 65535\n' },
    ]);
    expect(trace).toEqual(['setgroups: deny', 'uid_map: 0 1000 1', 'gid_map: 0 2000 1, 1 300000 65535']);
  });

  it('reports the failing file as the step when a later write fails', () => {
    const pid = impossiblePid();
    fsSpy.passThrough = false;
    let calls = 0;
    // Let setgroups "succeed", then really attempt uid_map (which must fail: no such pid).
    const maps = ROOT_RANGE();
    const trace: string[] = [];
    const wrapped = (l: string) => {
      trace.push(l);
      calls++;
      fsSpy.passThrough = true;
    };
    let err: unknown;
    try {
      writeMaps(pid, maps, wrapped);
    } catch (e) {
      err = e;
    }
    expect(calls).toBe(1);
    expect(trace).toEqual(['setgroups: allow']);
    expect(err).toBeInstanceOf(TsboxError);
    expect((err as TsboxError).step).toBe('uid_map');
    expect((err as TsboxError).path).toBe(`/proc/${pid}/uid_map`);
    expect(fsSpy.writes.map((w) => w.path)).toEqual([`/proc/${pid}/setgroups`, `/proc/${pid}/uid_map`]);
  });
});

describe('allocateRootMaps', () => {
  it('takes the lowest block no live container holds and no explicit registration overlaps; stale registrations go', () => {
    const { binding } = loadNative();
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-ids-'));
    const held: { unlock(): void }[] = [];
    const hold = (name: string, note: string) => held.push(binding.tryLockFile(join(dir, name), note)!);
    try {
      // Blocks 0 and 2 live (their locks held here), 1 and 3 left by containers that ended.
      hold('0.lock', 'a 1\n');
      hold('2.lock', 'b 2\n');
      for (const k of [1, 3]) writeFileSync(join(dir, `${k}.lock`), '');
      const block = (k: number) => [{ containerId: 0, hostId: ROOT_MAP_BASE + k * ROOT_MAP_SIZE, size: ROOT_MAP_SIZE }];
      const first = allocateRootMaps('c1', dir);
      expect(first.uid).toEqual(block(1));
      expect(first.gid).toEqual(block(1));
      // A live explicit registration over part of block 3, and a stale one (its holder gone) over block 4.
      hold('x-live.lock', JSON.stringify({ uid: [{ containerId: 0, hostId: ROOT_MAP_BASE + 3 * ROOT_MAP_SIZE + 10, size: 5 }], gid: [], note: 'live 3' }));
      writeFileSync(join(dir, 'x-stale.lock'), JSON.stringify({ uid: block(4), gid: block(4), note: 'stale 4' }));
      const second = allocateRootMaps('c2', dir);
      expect(second.uid).toEqual(block(4));
      expect(existsSync(join(dir, 'x-stale.lock'))).toBe(false);
      expect(existsSync(join(dir, 'x-live.lock'))).toBe(true);
      // Given back: the block is free for the next one.
      first.release!();
      expect(allocateRootMaps('c3', dir).uid).toEqual(block(1));
    } finally {
      for (const h of held) h.unlock();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("never takes a block that overlaps a user's range in /etc/subuid or /etc/subgid (their rootless containers run as those ids)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-ids-'));
    const taken: IdMaps[] = [];
    try {
      const subid = { subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
      const block = (k: number) => [{ containerId: 0, hostId: ROOT_MAP_BASE + k * ROOT_MAP_SIZE, size: ROOT_MAP_SIZE }];
      // Block 0 is alice's subordinate uids; the end of block 1 and the start of block 2 are bob's gids.
      writeFileSync(subid.subuid, `root:100000:65536\nalice:${ROOT_MAP_BASE}:${ROOT_MAP_SIZE}\n`);
      writeFileSync(subid.subgid, `bob:${ROOT_MAP_BASE + 2 * ROOT_MAP_SIZE - 5}:10\n`);
      taken.push(allocateRootMaps('c1', dir, subid));
      expect(taken[0]!.uid).toEqual(block(3));
      taken.push(allocateRootMaps('c2', dir, subid));
      expect(taken[1]!.uid).toEqual(block(4));
      // Every block given to users: refused, naming the files.
      writeFileSync(subid.subuid, `carol:${ROOT_MAP_BASE}:${4096 * ROOT_MAP_SIZE}\n`);
      expect(() => allocateRootMaps('c3', dir, subid)).toThrow(new RegExp(`^idmap\\(${dir}\\): ENOSPC — all 4096 id ranges are held by running containers, or overlap users' ranges in ${subid.subuid} or ${subid.subgid} \\(4096 of them\\)`));
    } finally {
      for (const t of taken) t.release!();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('registerExplicitMaps', () => {
  let dir: string;
  let subid: { subuid: string; subgid: string };
  const released: (() => void)[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsbox-ids-'));
    subid = { subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
    // alice has the range useradd gives the first user; tsbox's the one set aside for root's containers.
    writeFileSync(subid.subuid, 'alice:100000:65536\nroot:1000000:65536\n');
    writeFileSync(subid.subgid, 'alice:100000:65536\n1001:300000:65536\n');
  });
  afterEach(() => {
    for (const r of released.splice(0)) r();
    rmSync(dir, { recursive: true, force: true });
  });
  const register = (uid: { containerId: number; hostId: number; size: number }[], gid: typeof uid, id: string) => {
    const r = registerExplicitMaps(uid, gid, id, dir, subid);
    released.push(r.release);
    return r;
  };

  it("notes maps over a user's subordinate ids, naming the map, the user, the range and the file; registered all the same", () => {
    const m = [{ containerId: 0, hostId: 100000, size: 65536 }];
    const r = register(m, [{ containerId: 0, hostId: 300010, size: 10 }], 'c1');
    expect(r.notice).toBe(
      `tsbox: note: uidMap 0:100000:65536 overlaps alice's 100000:65536 in ${subid.subuid}; gidMap 0:300010:10 overlaps 1001's 300000:65536 in ${subid.subgid}: ` +
        "a user's own user namespaces (rootless containers, newuidmap) can map those host ids and reach this container's processes and files; " +
        `map ids no user is granted (leave uidMap and gidMap out for a block of tsbox's own), or, if the range is set aside for root's containers, grant it to root in ${subid.subuid} and ${subid.subgid}`,
    );
    expect(existsSync(join(dir, 'x-c1.lock'))).toBe(true);
  });

  it("no note for ids no user is granted, for root's own range, or for uids that only a subgid range covers", () => {
    expect(register([{ containerId: 0, hostId: 10000, size: 2000 }], [{ containerId: 0, hostId: 10000, size: 2000 }], 'c1').notice).toBeUndefined();
    expect(register([{ containerId: 0, hostId: 1000000, size: 65536 }], [{ containerId: 0, hostId: 2000000, size: 65536 }], 'c2').notice).toBeUndefined();
    expect(register([{ containerId: 0, hostId: 300000, size: 10 }], [{ containerId: 0, hostId: 3000000, size: 10 }], 'c3').notice).toBeUndefined();
  });

  it('computeMaps passes the note on to the container\'s notices', () => {
    const m = [{ containerId: 0, hostId: 100000, size: 65536 }];
    const ids = { allocate: () => { throw new Error('not asked'); }, register: (u: typeof m, g: typeof m, id: string) => register(u, g, id) };
    const maps = computeMaps({ userns: 'private', uidMap: m, gidMap: m }, 'c4', { uid: 0, gid: 0, name: 'root' }, ids);
    expect(maps?.notice).toMatch(/^tsbox: note: uidMap 0:100000:65536 overlaps alice's 100000:65536 in .*; gidMap 0:100000:65536 overlaps alice's 100000:65536 in /);
  });
});
