// ts/config/seccomp.ts: the `seccomp` option, profile files, and the plan's
// program. Profiles are validated by the one validator, in Rust
// (tsbox_core::seccomp::problems, whose own tests are cargo's); here the
// compiler is a stand-in, so nothing loads the native addon, and what is
// checked is how its problems reach the user.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';

import { loadSeccompProfile, seccompOptionSchema, seccompProfileJson, seccompProgram, type SeccompCompiler, type SeccompProblem } from '../../ts/config/seccomp.js';
import { rejection } from '../support/errors.js';

describe('the seccomp option', () => {
  const options = z.strictObject({ seccomp: z.optional(seccompOptionSchema()) });
  const optionPaths = (o: unknown) => {
    const r = options.safeParse(o);
    return r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
  };

  it('takes the keywords, a path, or a profile object, which it leaves to the compiler', () => {
    for (const seccomp of ['default', 'unconfined', './profile.json', '/etc/tsbox/seccomp.json', { defaultAction: 'SCMP_ACT_ALLOW' }, { defaultAction: 'SCMP_ACT_NOTIFY', x: 1 }]) {
      expect(options.parse({ seccomp })).toEqual({ seccomp });
    }
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

  /** A stand-in for the addon's compiler: records what it was given, and fails with `problems` when there are any. */
  function fakeCompiler(problems: SeccompProblem[] = []): SeccompCompiler & { seen: (string | null)[]; agents: (boolean | null | undefined)[] } {
    const seen: (string | null)[] = [];
    const agents: (boolean | null | undefined)[] = [];
    return {
      seen,
      agents,
      compileSeccomp: (json, agent) => {
        seen.push(json);
        agents.push(agent);
        if (problems.length > 0) throw Object.assign(new Error(problems.map((p) => `${p.path}: ${p.message}`).join('; ')), { code: 'InvalidArg' });
        return Buffer.from([0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]);
      },
      seccompProblems: (json, agent) => {
        seen.push(`problems of ${json}`);
        agents.push(agent);
        return problems;
      },
    };
  }

  it('reads a file and keeps its text, so 64-bit values reach the compiler exact', () => {
    const text = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_EQ"}]}]}';
    write('p.json', text);
    expect(loadSeccompProfile('p.json', dir)).toEqual({ path: join(dir, 'p.json'), text });
  });

  it('reports a file that is not there as a config error naming it', () => {
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

  it('refuses a number in a profile object that already lost precision, by path, before compiling', () => {
    const arg = (value: number | bigint) => ({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] }] });
    const c = fakeCompiler();
    const e = rejection(() => seccompProgram(arg(2 ** 60), c));
    expect(e.step).toBe('config');
    expect(e.path).toBe('seccomp');
    expect(e.issues).toEqual([{ path: 'seccomp.syscalls[0].args[0].value', message: 'must be an integer from 0 to 2^64-1 (above 2^53, a BigInt: numbers lose precision there)' }]);
    expect(c.seen).toEqual([]);
    // The largest exact number and a BigInt go through as they are.
    expect(seccompProgram(arg(Number.MAX_SAFE_INTEGER), c)).toBe('060000000000ff7f');
    expect(seccompProgram(arg(1n << 60n), c)).toBe('060000000000ff7f');
    expect(c.seen[1]).toContain('"value":1152921504606846976');
  });

  it('compiles the default profile by default, and nothing when unconfined', () => {
    const c = fakeCompiler();
    expect(seccompProgram(undefined, c)).toBe('060000000000ff7f');
    expect(seccompProgram('default', c)).toBe('060000000000ff7f');
    expect(seccompProgram('unconfined', c)).toBeNull();
    expect(c.seen).toEqual([null, null]);
  });

  it("hands the compiler a file's text as it is, and an object as JSON", () => {
    const text = '{ "defaultAction": "SCMP_ACT_ALLOW" }\n';
    write('allow.json', text);
    const c = fakeCompiler();
    seccompProgram('allow.json', c, dir);
    seccompProgram({ defaultAction: 'SCMP_ACT_LOG' }, c);
    expect(c.seen).toEqual([text, '{"defaultAction":"SCMP_ACT_LOG"}']);
  });

  it('SCMP_ACT_NOTIFY only in an OCI bundle, whose first process hands its agent the listener: the compiler is told whether there is an agent, and its problems are reported as it words them', () => {
    const profile = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/agent.sock', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }, { names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] } as const;
    const problem = { path: 'syscalls[1].action', message: 'SCMP_ACT_NOTIFY needs a seccomp agent, which tsbox hands a listener only in an OCI bundle' };
    const refused = fakeCompiler([problem]);
    const e = rejection(() => seccompProgram(profile, refused));
    expect(e.issues).toEqual([{ path: 'seccomp.syscalls[1].action', message: problem.message }]);
    // Compiled once and asked for its problems once, both without an agent: the profile is read by the compiler only.
    expect(refused.agents).toEqual([false, false]);
    // An OCI bundle's (relaxed, as runc takes them) has one.
    const oci = fakeCompiler();
    expect(seccompProgram(profile, oci, dir, true)).toMatch(/^[0-9a-f]+$/);
    expect(oci.agents).toEqual([true]);
  });

  it("reports the validator's problems as one config error naming the file, each with its JSON path", () => {
    const path = write('bad.json', '{}');
    const c = fakeCompiler([
      { path: 'syscalls[1].action', message: 'SCMP_ACT_NOTIFY is not supported by tsbox: tsbox has no user-space notification' },
      { path: 'syscalls[2].names[0]', message: 'unknown syscall "mkdri"' },
    ]);
    const e = rejection(() => seccompProgram(path, c));
    expect(e.step).toBe('config');
    expect(e.errno).toBe(0);
    expect(e.path).toBe(path);
    expect(e.message).toBe(`config(${path}): syscalls[1].action: SCMP_ACT_NOTIFY is not supported by tsbox: tsbox has no user-space notification (and 1 more: syscalls[2].names[0]: unknown syscall "mkdri")`);
    expect(e.issues.map((i) => i.path)).toEqual(['syscalls[1].action', 'syscalls[2].names[0]']);
    expect(e.hint).toContain('`tsbox seccomp default > profile.json`');
    expect(e.exitCode).toBe(125);
  });

  it('puts the problems of a profile object under `seccomp`', () => {
    const c = fakeCompiler([
      { path: '(profile)', message: 'not valid JSON' },
      { path: 'syscalls[0].names[0]', message: 'unknown syscall "mkdri"' },
    ]);
    const e = rejection(() => seccompProgram({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mkdri'], action: 'SCMP_ACT_ALLOW' }] }, c));
    expect(e.path).toBe('seccomp');
    expect(e.issues).toEqual([
      { path: 'seccomp', message: 'not valid JSON' },
      { path: 'seccomp.syscalls[0].names[0]', message: 'unknown syscall "mkdri"' },
    ]);
  });

  it('says what the compiler said when the default profile itself fails (a host it does not know)', () => {
    const c: SeccompCompiler = {
      compileSeccomp: () => {
        throw new Error('seccomp filters are compiled for x86_64 and aarch64, not riscv64');
      },
      seccompProblems: () => [],
    };
    const e = rejection(() => seccompProgram('default', c));
    expect(e.issues).toEqual([{ path: 'seccomp', message: 'seccomp filters are compiled for x86_64 and aarch64, not riscv64' }]);
  });
});
