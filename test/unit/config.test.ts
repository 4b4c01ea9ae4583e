// parseRunInput (ts/config/schema.ts): defaults, and every rejection names the
// JSON path of the problem, all problems at once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { DEFAULT_PIDS_LIMIT, parseLimits } from '../../ts/cgroups/limits.js';
import { loadConfig } from '../../ts/config/file.js';
import { LIMIT_KEYS, limitsOf, parseRunInput, resolvedLimitsOf } from '../../ts/config/schema.js';
import { TsboxError } from '../../ts/errors.js';
import { rejection } from '../support/errors.js';


const paths = (e: TsboxError) => e.issues.map((i) => i.path);

const DEFAULTS = { cwd: '/', network: { mode: 'none' }, publish: [], expose: [], publishAll: false, allow: [], addHost: [], dns: [], dnsSearch: [], detach: false, init: true, trace: false, stdio: 'pipe', readOnly: false, writableRootfs: false, volumes: [], tmpfs: [], mounts: [], rootfsPropagation: 'private', groupAdd: [], capAdd: [], capDrop: [], noNewPrivileges: true, userns: 'private', tty: false, seccomp: 'default', pidsLimit: DEFAULT_PIDS_LIMIT, ulimits: {} };

describe('parseRunInput: accepted input', () => {
  it('fills the defaults: cwd /, init on, trace off, stdio piped', () => {
    const { command, options } = parseRunInput(['sh', '-c', 'true'], {});
    expect(command).toEqual(['sh', '-c', 'true']);
    expect(options).toEqual(DEFAULTS);
  });

  it('treats missing options (undefined or null) as {}', () => {
    expect(parseRunInput(['true'], undefined).options).toEqual(DEFAULTS);
    expect(parseRunInput(['true'], null).options).toEqual(DEFAULTS);
  });

  it('keeps the values it is given instead of the defaults', () => {
    const { options } = parseRunInput(['true'], {
      rootfs: './rootfs',
      hostname: 'box.example-1',
      env: { A: '1', 'weird.name-ok': 'x=y' },
      cwd: '/tmp',
      init: false,
      trace: true,
      stdio: 'inherit',
    });
    expect(options).toEqual({
      ...DEFAULTS,
      rootfs: './rootfs',
      hostname: 'box.example-1',
      env: { A: '1', 'weird.name-ok': 'x=y' },
      cwd: '/tmp',
      init: false,
      trace: true,
      stdio: 'inherit',
    });
  });

  it('accepts stdio as a 3-tuple', () => {
    expect(parseRunInput(['true'], { stdio: ['inherit', 'pipe', 'ignore'] }).options.stdio).toEqual(['inherit', 'pipe', 'ignore']);
  });

  it('takes logMaxSize as bytes or a size with a unit, 0 for no limit, and rejects a negative one', () => {
    expect(parseRunInput(['true'], { logMaxSize: '64k' }).options.logMaxSize).toBe(65536);
    expect(parseRunInput(['true'], { logMaxSize: 0 }).options.logMaxSize).toBe(0);
    expect(parseRunInput(['true'], {}).options.logMaxSize).toBeUndefined();
    expect(paths(rejection(() => parseRunInput(['true'], { logMaxSize: -1 })))).toEqual(['logMaxSize']);
  });

  it('accepts a 64-byte hostname (the kernel limit) and rejects 65', () => {
    expect(parseRunInput(['true'], { hostname: 'a'.repeat(64) }).options.hostname).toBe('a'.repeat(64));
    expect(paths(rejection(() => parseRunInput(['true'], { hostname: 'a'.repeat(65) })))).toEqual(['hostname']);
  });
});

describe('resolvedLimitsOf: the launch skips parseLimits on resolved options', () => {
  // The launch gives the cgroup driver the limits of resolved options as
  // they are (prepareParsedCgroup): they must be what parseLimits would make
  // of them, for every limit field, sizes as strings included.
  const inputs: Record<string, unknown>[] = [
    {},
    { memory: '64m', memorySwap: '128m', memoryReservation: '32m', memorySwappiness: 10, oomKillDisable: true, kernelMemory: '48m', kernelMemoryTCP: '16m' },
    { memory: 1e8, memorySwap: -1 },
    { cpus: 0.5, cpuShares: 512, cpusetCpus: '0', cpusetMems: '0' },
    { cpuQuota: 50000, cpuPeriod: 100000 },
    { pidsLimit: 10 },
    { pidsLimit: -1 },
    { blkioWeight: 300, blkioWeightDevice: [{ path: '/dev/null', weight: 200 }] },
    { deviceReadBps: [{ path: '/dev/null', rate: '1m' }], deviceWriteBps: [{ path: '/dev/null', rate: 1024 }], deviceReadIops: [{ path: '/dev/null', rate: 10 }], deviceWriteIops: [{ path: '/dev/null', rate: 20 }] },
    { hugepageLimits: [{ pageSize: '2MB', limit: 2 * 1024 ** 3 }] },
    { networkClassId: 0x100001, networkPriorities: [{ name: 'lo', priority: 10 }] },
    { unified: { 'memory.max': '100000000', 'pids.max': 'max' } },
  ];
  it.each(inputs.map((i) => [JSON.stringify(i), i]))('%s', (_, input) => {
    const o = parseRunInput(['true'], input).options;
    const given = resolvedLimitsOf(o);
    expect(given).toEqual(parseLimits(limitsOf(o)));
    // And nothing of a limit was lost on the way: each one given is there.
    for (const k of Object.keys(input as object)) {
      expect(LIMIT_KEYS).toContain(k);
      expect(given).toHaveProperty(k);
    }
  });
});

describe('parseRunInput: rejected input', () => {
  it('rejects (uid_t)-1 as a user, a group or a supplementary group, and takes the id below it', () => {
    for (const [options, path] of [[{ user: '4294967295' }, 'user'], [{ user: 'app:4294967295' }, 'user'], [{ groupAdd: ['4294967295'] }, 'groupAdd[0]']] as const) {
      const e = rejection(() => parseRunInput(['true'], options));
      // The value is shown where the message does not already show it.
      const shown = options === undefined ? '' : JSON.stringify(Object.values(options)[0]).replace(/^\[|\]$/g, '');
      const text = 'a numeric id must be below 4294967295 ((uid_t)-1 means "leave unchanged" to the kernel)';
      expect(e.issues).toEqual([{ path, message: shown === '"4294967295"' ? text : `${shown}: ${text}` }]);
    }
    expect(parseRunInput(['true'], { user: '4294967294:4294967294', groupAdd: ['4294967294'] }).options.user).toBe('4294967294:4294967294');
  });

  it('rejects an unknown option key, naming it', () => {
    const e = rejection(() => parseRunInput(['true'], { bogus: 1 }));
    expect(e.step).toBe('config');
    expect(e.errno).toBe(0);
    expect(e.exitCode).toBe(125);
    expect(e.issues).toEqual([{ path: 'bogus', message: 'unknown option' }]);
    expect(e.path).toBe('bogus');
    expect(e.message).toContain('bogus');
    expect(e.message).toMatch(/unknown option/);
  });

  it('suggests the option or rlimit meant by a mistyped key, and nothing for a key like none (issue 19)', () => {
    const e = rejection(() => parseRunInput(['true'], { memroy: '64m', ulimits: { nofle: 10 }, zzzzzz: 1 }));
    expect(e.issues).toEqual([
      { path: 'ulimits.nofle', message: 'unknown option; did you mean nofile?' },
      { path: 'memroy', message: 'unknown option; did you mean memory?' },
      { path: 'zzzzzz', message: 'unknown option' },
    ]);
  });

  it('names every unknown key when there are several', () => {
    const e = rejection(() => parseRunInput(['true'], { bogus: 1, rootFS: '/x' }));
    expect(paths(e).sort()).toEqual(['bogus', 'rootFS']);
    expect(e.message).toContain('bogus');
    expect(e.message).toContain('rootFS');
  });

  it.each([
    ['bad_host', 'underscore'],
    ['-box', 'leading hyphen'],
    ['box-', 'trailing hyphen'],
    ['a..b', 'empty label'],
    ['', 'empty'],
    ['has space', 'space'],
  ])('rejects the hostname %j (%s) at path "hostname"', (hostname) => {
    const e = rejection(() => parseRunInput(['true'], { hostname }));
    expect(e.step).toBe('config');
    // An empty name breaks two rules (length and pattern); both are reported at the same path.
    expect([...new Set(paths(e))]).toEqual(['hostname']);
    expect(e.message).toContain('hostname');
  });

  it('rejects a relative cwd at path "cwd"', () => {
    const e = rejection(() => parseRunInput(['true'], { cwd: 'tmp' }));
    expect(paths(e)).toEqual(['cwd']);
    expect(e.issues[0]!.message).toMatch(/absolute/);
  });

  it('rejects a cwd containing a NUL byte', () => {
    const e = rejection(() => parseRunInput(['true'], { cwd: '/tmp\0x' }));
    expect(paths(e)).toEqual(['cwd']);
    expect(e.issues[0]!.message).toMatch(/NUL/);
  });

  it('rejects an env name containing "=" at path env.<name>', () => {
    const e = rejection(() => parseRunInput(['true'], { env: { 'A=B': 'x', GOOD: 'y' } }));
    expect(paths(e)).toEqual(['env.A=B']);
    expect(e.message).toContain('env.A=B');
  });

  it('rejects an env value containing a NUL byte at path env.<name>', () => {
    const e = rejection(() => parseRunInput(['true'], { env: { A: 'x\0y' } }));
    expect(paths(e)).toEqual(['env.A']);
    expect(e.issues[0]!.message).toMatch(/NUL/);
  });

  it('rejects a NUL byte in an argument at path command[i]', () => {
    const e = rejection(() => parseRunInput(['sh', 'a\0b'], {}));
    expect(paths(e)).toEqual(['command[1]']);
    expect(e.message).toContain('command[1]');
    expect(e.issues[0]!.message).toMatch(/NUL/);
  });

  it('rejects a non-string argument at path command[i]', () => {
    expect(paths(rejection(() => parseRunInput(['sh', 1], {})))).toEqual(['command[1]']);
  });

  it('rejects an empty command at path "command"', () => {
    const e = rejection(() => parseRunInput([], {}));
    expect(paths(e)).toEqual(['command']);
    expect(e.issues[0]!.message).toMatch(/empty/);
  });

  it.each([['sh -c true'], [undefined], [{ 0: 'sh' }]])('rejects a non-array command %j at path "command"', (command) => {
    const e = rejection(() => parseRunInput(command, {}));
    expect(paths(e)).toEqual(['command']);
    expect(e.issues[0]!.message).toMatch(/array/);
  });

  it('rejects a stdio tuple of the wrong length and an unknown stdio mode', () => {
    expect(paths(rejection(() => parseRunInput(['true'], { stdio: ['inherit', 'pipe'] })))).toEqual(['stdio']);
    expect(paths(rejection(() => parseRunInput(['true'], { stdio: 'tty' })))).toEqual(['stdio']);
  });

  it('rejects wrongly typed booleans and options that are not an object', () => {
    expect(paths(rejection(() => parseRunInput(['true'], { init: 'no' })))).toEqual(['init']);
    expect(paths(rejection(() => parseRunInput(['true'], { trace: 1 })))).toEqual(['trace']);
    expect(paths(rejection(() => parseRunInput(['true'], 'rootfs=/x')))).toHaveLength(1);
  });

  it('says a problem once, even when a field\'s own check and a check across fields both see it', () => {
    const e = rejection(() => parseRunInput(['true'], { memory: 0 }));
    expect(e.issues).toEqual([{ path: 'memory', message: expect.stringMatching(/^0: must be at least 6m/) as unknown as string }]);
    expect(e.message).toBe(`config(memory): ${e.issues[0]!.message}`);
  });

  it('explains the forms pidsLimit takes instead of "expected -1" (issue 19)', () => {
    expect(rejection(() => parseRunInput(['true'], { pidsLimit: '32' })).message).toBe(
      'config(pidsLimit): must be a whole number of processes, 1 or more, or -1 for no limit (a number: 32, not "32")',
    );
  });

  it('shows the value a problem is about (issue 19)', () => {
    const e = rejection(() => parseRunInput(['true'], { capAdd: ['NET_ADMINN'] }));
    expect(e.message).toBe('config(capAdd[0]): "NET_ADMINN": unknown capability (names such as NET_ADMIN or CAP_NET_ADMIN, or ALL)');
  });

  it('lists every problem at once, the command and the options together', () => {
    const e = rejection(() =>
      parseRunInput(['sh', 'x\0'], { bogus: true, cwd: 'rel', hostname: '_', env: { 'A=B': '1' } }),
    );
    expect(e.step).toBe('config');
    expect(paths(e).sort()).toEqual(['bogus', 'command[1]', 'cwd', 'env.A=B', 'hostname']);
    // The first problem is the error's path; the message mentions the rest.
    expect(e.path).toBe(e.issues[0]!.path);
    expect(e.message).toContain('and 4 more');
    for (const p of paths(e)) expect(e.message).toContain(p);
  });
});

describe('loadConfig', () => {
  it('says where a file\'s JSON breaks, as FILE:LINE:COLUMN, in one line (issue 19)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-unit-config-'));
    try {
      const file = join(dir, 'box.json');
      writeFileSync(file, '{\n  "memory": "64m",\n  "cpus": 1,,\n}\n');
      const e = rejection(() => loadConfig(file));
      expect(e.message).toBe(`config(${file}:3:13): not valid JSON: Expected double-quoted property name`);
      writeFileSync(file, '{"a": 1');
      expect(rejection(() => loadConfig(file)).path).toBe(`${file}:1:8`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('resolves the bind sources of mounts against the file\'s directory, as it does for volumes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-unit-config-'));
    try {
      const file = join(dir, 'box.json');
      writeFileSync(file, JSON.stringify({ volumes: ['data:/data'], mounts: ['type=bind,source=rel,target=/m', { type: 'bind', source: 'obj', target: '/o' }, 'type=tmpfs,target=/t'] }));
      const { options } = loadConfig(file);
      expect(options.volumes).toEqual([`${join(dir, 'data')}:/data`]);
      expect(options.mounts).toEqual([`type=bind,source=${join(dir, 'rel')},target=/m`, { type: 'bind', source: join(dir, 'obj'), target: '/o' }, 'type=tmpfs,target=/t']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
