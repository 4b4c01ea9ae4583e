// ts/config/seccomp.ts: the OCI linux.seccomp schema rejects bad profiles with
// the JSON path of each problem, before anything reaches the Rust compiler;
// profile files and the `seccomp` option become the plan's program. The
// compiler itself is faked here (its own tests are cargo's): nothing loads the
// native addon.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';

import {
  loadSeccompProfile,
  ociSeccompProfileSchema,
  seccompIssues,
  seccompOptionSchema,
  seccompProfileJson,
  seccompProgram,
  type CompileSeccomp,
} from '../../ts/config/seccomp.js';
import { rejection } from '../support/errors.js';

/** Each problem of `profile` as `path: message`. */
function problems(profile: unknown): string[] {
  const r = ociSeccompProfileSchema.safeParse(profile);
  if (r.success) throw new Error('expected the profile to be refused');
  return seccompIssues(r.error).map((i) => `${i.path}: ${i.message}`);
}

const paths = (profile: unknown): string[] => problems(profile).map((p) => p.slice(0, p.indexOf(': ')));


const allowRead = { names: ['read'], action: 'SCMP_ACT_ALLOW' };

describe('the OCI seccomp schema: accepted profiles', () => {
  it('accepts a profile in the shape of tsbox\'s default: masked-eq conditions, errnos, architectures', () => {
    const profile = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
      syscalls: [
        { names: ['chmod', 'fchmod'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 1, value: 0o4000, valueTwo: 0o4000, op: 'SCMP_CMP_MASKED_EQ' }] },
        { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 1, value: 0xffffffff, valueTwo: 0x5412, op: 'SCMP_CMP_MASKED_EQ' }] },
        { names: ['read', 'write', 'exit_group', '_llseek'], action: 'SCMP_ACT_ALLOW' },
        { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      ],
    };
    expect(ociSeccompProfileSchema.parse(profile)).toEqual(profile);
  });

  it('accepts what Go OCI writers emit: nulls for empty lists, TSYNC, an empty listenerPath, valueTwo 0', () => {
    const r = ociSeccompProfileSchema.safeParse({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: null,
      architectures: null,
      flags: ['SECCOMP_FILTER_FLAG_TSYNC'],
      listenerPath: '',
      syscalls: [
        { names: ['accept'], action: 'SCMP_ACT_ALLOW', args: null, errnoRet: null },
        { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      ],
    });
    expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
  });

  it('accepts every action but NOTIFY, with errnoRet where the action takes one', () => {
    for (const action of ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_LOG', 'SCMP_ACT_ALLOW']) {
      expect(ociSeccompProfileSchema.safeParse({ defaultAction: action, syscalls: [{ names: ['mkdir'], action }] }).success, action).toBe(true);
    }
    for (const action of ['SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE']) {
      expect(ociSeccompProfileSchema.safeParse({ defaultAction: action, defaultErrnoRet: 0, syscalls: [{ names: ['mkdir'], action, errnoRet: 4095 }] }).success, action).toBe(true);
    }
  });

  it('takes 64-bit values as BigInts, and refuses numbers that already lost precision', () => {
    const arg = (value: number | bigint) => ({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] }] });
    expect(ociSeccompProfileSchema.safeParse(arg(0xffff_ffff_ffff_ffffn)).success).toBe(true);
    expect(ociSeccompProfileSchema.safeParse(arg(Number.MAX_SAFE_INTEGER)).success).toBe(true);
    expect(problems(arg(2 ** 60))).toEqual(['syscalls[0].args[0].value: must be an integer from 0 to 2^64-1 (above 2^53, a BigInt: numbers lose precision there)']);
    expect(paths(arg(1n << 64n))).toEqual(['syscalls[0].args[0].value']);
    expect(paths(arg(-1))).toEqual(['syscalls[0].args[0].value']);
    expect(paths(arg(1.5))).toEqual(['syscalls[0].args[0].value']);
  });
});

describe('the OCI seccomp schema: every problem with its JSON path', () => {
  it('names a bad action, operator and architecture by path', () => {
    expect(
      problems({
        defaultAction: 'SCMP_ACT_DENY',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_Z80'],
        syscalls: [allowRead, { names: ['write'], action: 'SCMP_ACT_ALOW' }, { names: ['close'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQUAL' }] }],
      }),
    ).toEqual([
      expect.stringMatching(/^defaultAction: Invalid option: expected one of "SCMP_ACT_KILL"\|/),
      expect.stringMatching(/^architectures\[1\]: Invalid option: expected one of "SCMP_ARCH_X86"\|/),
      expect.stringMatching(/^syscalls\[1\]\.action: Invalid option/),
      expect.stringMatching(/^syscalls\[2\]\.args\[0\]\.op: Invalid option: expected one of "SCMP_CMP_NE"\|/),
    ]);
  });

  it('refuses what tsbox cannot honour, by path, instead of dropping it', () => {
    expect(
      problems({
        defaultAction: 'SCMP_ACT_NOTIFY',
        listenerPath: '/run/agent.sock',
        flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG'],
        syscalls: [allowRead, { names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }],
      }),
    ).toEqual([
      'defaultAction: SCMP_ACT_NOTIFY is not supported by tsbox: it needs a seccomp agent; use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS',
      'flags[1]: is not supported by tsbox: filters are loaded without flags',
      'listenerPath: a seccomp agent is not supported by tsbox (no SCMP_ACT_NOTIFY)',
      'syscalls[1].action: SCMP_ACT_NOTIFY is not supported by tsbox: it needs a seccomp agent; use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS',
    ]);
  });

  it('names unknown fields (Docker-only ones included) one by one, and missing ones', () => {
    expect(
      problems({
        archMap: [],
        syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] }, comment: 'x' }, { action: 'SCMP_ACT_ALLOW' }],
      }),
    ).toEqual([
      'defaultAction: Invalid option: expected one of "SCMP_ACT_KILL"|"SCMP_ACT_KILL_PROCESS"|"SCMP_ACT_KILL_THREAD"|"SCMP_ACT_TRAP"|"SCMP_ACT_ERRNO"|"SCMP_ACT_TRACE"|"SCMP_ACT_ALLOW"|"SCMP_ACT_LOG"|"SCMP_ACT_NOTIFY"',
      'syscalls[0].includes: unknown field',
      'syscalls[0].comment: unknown field',
      'syscalls[1].names: Invalid input: expected array, received undefined',
      'archMap: unknown field',
    ]);
  });

  it('names bad names, indexes, errnos and operator values by path', () => {
    expect(
      problems({
        defaultAction: 'SCMP_ACT_ALLOW',
        defaultErrnoRet: 1,
        syscalls: [
          { names: [], action: 'SCMP_ACT_ERRNO', errnoRet: 5000 },
          { names: ['Read', 7], action: 'SCMP_ACT_ALLOW' },
          {
            names: ['read'],
            action: 'SCMP_ACT_ERRNO',
            args: [
              { index: 6, value: 0, op: 'SCMP_CMP_EQ' },
              { index: 0, value: 0, valueTwo: 4, op: 'SCMP_CMP_EQ' },
              { index: 0, value: 3, op: 'SCMP_CMP_GE' },
              { index: 1, value: 3, valueTwo: 4, op: 'SCMP_CMP_MASKED_EQ' },
            ],
          },
        ],
      }),
    ).toEqual([
      'syscalls[0].names: must name at least one system call',
      'syscalls[0].errnoRet: must be at most 4095, the largest errno',
      'syscalls[1].names[0]: is not a system call name (lowercase letters, digits and _)',
      'syscalls[1].names[1]: Invalid input: expected string, received number',
      'syscalls[2].args[0].index: system calls have arguments 0 to 5',
      'syscalls[2].args[1].valueTwo: only SCMP_CMP_MASKED_EQ uses valueTwo; SCMP_CMP_EQ compares the argument with value',
      'syscalls[2].args[3].valueTwo: has bits outside the mask (value), so the condition could never hold',
      'syscalls[2].args[2].index: a second condition on argument 0 (the first is args[1]); conditions of a rule must all hold — write separate rules instead',
    ]);
  });

  it('names an errnoRet given with an action that takes none', () => {
    // Checks across fields run once the fields themselves have the right types.
    expect(problems({ defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: 1, syscalls: [allowRead, { names: ['write'], action: 'SCMP_ACT_LOG', errnoRet: 1 }] })).toEqual([
      'syscalls[1].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, and the action is SCMP_ACT_LOG',
      'defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, and the default action is SCMP_ACT_ALLOW',
    ]);
  });

  it('refuses a profile that is not an object at its root', () => {
    expect(problems([])).toEqual(['(profile): Invalid input: expected object, received array']);
  });
});

describe('the seccomp option', () => {
  const options = z.strictObject({ seccomp: z.optional(seccompOptionSchema) });
  const optionPaths = (o: unknown) => {
    const r = options.safeParse(o);
    return r.success ? [] : seccompIssues(r.error).map((i) => i.path);
  };

  it('takes the keywords, a path, or a profile object', () => {
    for (const seccomp of ['default', 'unconfined', './profile.json', '/etc/tsbox/seccomp.json', { defaultAction: 'SCMP_ACT_ALLOW' }]) {
      expect(options.parse({ seccomp })).toEqual({ seccomp });
    }
  });

  it('reports a bad inline profile with paths under `seccomp`', () => {
    expect(optionPaths({ seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY', x: 1 }] } })).toEqual([
      'seccomp.syscalls[0].action',
      'seccomp.syscalls[0].x',
    ]);
  });

  it('refuses anything else at `seccomp` itself', () => {
    for (const seccomp of [5, [], null, '', 'a\0b']) expect(optionPaths({ seccomp }), String(seccomp)).toEqual(['seccomp']);
  });
});

describe('profile files and the plan\'s program', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsbox-seccomp-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

  /** A stand-in for the addon's compileSeccomp that records what it was given. */
  function fakeCompile(fail?: string): { compile: CompileSeccomp; seen: (string | null)[] } {
    const seen: (string | null)[] = [];
    return {
      seen,
      compile: (json) => {
        seen.push(json);
        if (fail) throw Object.assign(new Error(fail), { code: 'InvalidArg' });
        return Buffer.from([0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]);
      },
    };
  }

  it('reads a valid file and keeps its text, so 64-bit values reach the compiler exact', () => {
    const text = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_EQ"}]}]}';
    write('p.json', text);
    const file = loadSeccompProfile('p.json', dir);
    expect(file.path).toBe(join(dir, 'p.json'));
    expect(file.text).toBe(text);
    expect(file.profile.defaultAction).toBe('SCMP_ACT_ALLOW');
  });

  it('reports a bad file as a config error naming the file, with the JSON path of every problem', () => {
    const path = write('bad.json', JSON.stringify({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [allowRead, { names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }, { names: ['x'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }] }));
    const e = rejection(() => loadSeccompProfile(path));
    expect(e.step).toBe('config');
    expect(e.errno).toBe(0);
    expect(e.path).toBe(path);
    expect(e.message).toMatch(new RegExp(`^config\\(${path}\\): syscalls\\[1\\]\\.action: SCMP_ACT_NOTIFY is not supported by tsbox.* \\(and 1 more: syscalls\\[2\\]\\.errnoRet: only SCMP_ACT_ERRNO`));
    expect(e.issues.map((i) => i.path)).toEqual(['syscalls[1].action', 'syscalls[2].errnoRet']);
    expect(e.exitCode).toBe(125);
  });

  it('reports a file that is not JSON, or not there', () => {
    const e = rejection(() => loadSeccompProfile(write('broken.json', '{"defaultAction": ')));
    expect(e.step).toBe('config');
    expect(e.issues[0]!.path).toBe('(profile)');
    expect(e.message).toContain('not valid JSON');
    const missing = rejection(() => loadSeccompProfile('nope.json', dir));
    expect(missing.step).toBe('config');
    expect(missing.errno).toBe(2);
    expect(missing.path).toBe(join(dir, 'nope.json'));
  });

  it('writes BigInts in a profile object as exact integers', () => {
    const json = seccompProfileJson({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0xffff_ffff_ffff_ffffn, valueTwo: 1n, op: 'SCMP_CMP_MASKED_EQ' }] }],
    });
    expect(json).toBe('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":18446744073709551615,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]}]}');
  });

  it('compiles the default profile by default, and nothing when unconfined', () => {
    const { compile, seen } = fakeCompile();
    expect(seccompProgram(undefined, compile)).toBe('060000000000ff7f');
    expect(seccompProgram('default', compile)).toBe('060000000000ff7f');
    expect(seccompProgram('unconfined', compile)).toBeNull();
    expect(seen).toEqual([null, null]);
  });

  it('hands the compiler a file\'s text as it is, and an object as JSON', () => {
    const text = '{ "defaultAction": "SCMP_ACT_ALLOW" }\n';
    write('allow.json', text);
    const { compile, seen } = fakeCompile();
    seccompProgram('allow.json', compile, dir);
    seccompProgram({ defaultAction: 'SCMP_ACT_LOG' }, compile);
    expect(seen).toEqual([text, '{"defaultAction":"SCMP_ACT_LOG"}']);
  });

  it('turns a compiler error into a config error that keeps the JSON path', () => {
    const path = write('typo.json', JSON.stringify({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mkdri'], action: 'SCMP_ACT_ALLOW' }] }));
    const { compile } = fakeCompile('seccomp profile: syscalls[0].names[0]: unknown syscall "mkdri"');
    const e = rejection(() => seccompProgram(path, compile));
    expect(e.step).toBe('config');
    expect(e.path).toBe(path);
    expect(e.message).toBe(`config(${path}): syscalls[0].names[0]: unknown syscall "mkdri"`);
    expect(e.issues).toEqual([{ path: 'syscalls[0].names[0]', message: 'unknown syscall "mkdri"' }]);
    const inline = rejection(() => seccompProgram({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mkdri'], action: 'SCMP_ACT_ALLOW' }] }, compile));
    expect(inline.path).toBe('seccomp');
  });
});
