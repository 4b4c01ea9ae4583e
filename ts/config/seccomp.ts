/**
 * Seccomp profiles in the OCI runtime-spec `linux.seccomp` shape: the schema
 * that rejects bad input with the JSON path of each problem before it reaches
 * Rust, reading a profile file (`--security-opt seccomp=PATH`), and turning the
 * `seccomp` option into the compiled program the launch plan carries.
 *
 * The Rust compiler (tsbox_core::seccomp, through the addon's
 * `compileSeccomp`) is the authority: it also checks what this schema cannot
 * know — that each name is a system call, and that no call has two
 * unconditional actions — and reports those with their JSON paths too.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import * as z from 'zod/mini';

import { TsboxError, fromSystemError } from '../errors.js';
import './locale.js';

export const SECCOMP_ACTIONS = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
] as const;

export const SECCOMP_OPERATORS = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
] as const;

export const SECCOMP_ARCHITECTURES = [
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
] as const;

export const SECCOMP_FLAGS = [
  'SECCOMP_FILTER_FLAG_TSYNC',
  'SECCOMP_FILTER_FLAG_LOG',
  'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
  'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
] as const;

/** The largest errno a filter may return (the kernel's MAX_ERRNO). */
const MAX_ERRNO = 4095;
const U64_MAX = (1n << 64n) - 1n;

const big = (v: number | bigint | null | undefined): bigint => (v == null ? 0n : typeof v === 'bigint' ? v : BigInt(v));

/**
 * A 64-bit argument value. In a profile object given to the API, a number must
 * be exact (a safe integer) and larger values are BigInts. In a file, the text
 * goes to Rust as it is, so a large number there is exact even though
 * JSON.parse rounded it; it only has to be in range.
 */
function u64(exact: boolean) {
  return z.custom<number | bigint>(
    (v) =>
      typeof v === 'bigint'
        ? v >= 0n && v <= U64_MAX
        : typeof v === 'number' && Number.isInteger(v) && v >= 0 && (exact ? Number.isSafeInteger(v) : v <= 2 ** 64),
    { message: exact ? 'must be an integer from 0 to 2^64-1 (above 2^53, a BigInt: numbers lose precision there)' : 'must be an integer from 0 to 2^64-1' },
  );
}

const errno = z
  .number({ message: `must be an errno, an integer from 0 to ${MAX_ERRNO}` })
  .check(
    z.int({ message: `must be an errno, an integer from 0 to ${MAX_ERRNO}` }),
    z.gte(0, { message: `must be an errno, an integer from 0 to ${MAX_ERRNO}` }),
    z.lte(MAX_ERRNO, { message: `must be at most ${MAX_ERRNO}, the largest errno` }),
  );

/** `schema` refined by a type guard, whose output type it narrows (as zod classic's `refine` does). */
function narrowed<S extends z.ZodMiniType, R extends z.output<S>>(schema: S, guard: (v: z.output<S>) => v is R, message: string) {
  return schema.check(z.refine(guard, { message })) as S & z.ZodMiniType<R, z.input<S>>;
}

const action = narrowed(
  z.enum(SECCOMP_ACTIONS),
  (a) => a !== 'SCMP_ACT_NOTIFY',
  'SCMP_ACT_NOTIFY is not supported by tsbox: it needs a seccomp agent; use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS',
);

const takesErrno = (a: string) => a === 'SCMP_ACT_ERRNO' || a === 'SCMP_ACT_TRACE';

const syscallName = z.string().check(z.regex(/^[a-z_][a-z0-9_]*$/, { message: 'is not a system call name (lowercase letters, digits and _)' }));

function profileSchema(exact: boolean) {
  const value = u64(exact);
  const arg = z
    .strictObject({
      index: z.number().check(z.int(), z.gte(0, { message: 'system calls have arguments 0 to 5' }), z.lte(5, { message: 'system calls have arguments 0 to 5' })),
      value,
      valueTwo: z.optional(value),
      op: z.enum(SECCOMP_OPERATORS),
    })
    .check(z.superRefine((a, ctx) => {
      if (a.op !== 'SCMP_CMP_MASKED_EQ' && big(a.valueTwo) !== 0n) {
        ctx.addIssue({ code: 'custom', path: ['valueTwo'], message: `only SCMP_CMP_MASKED_EQ uses valueTwo; ${a.op} compares the argument with value` });
      }
      if (a.op === 'SCMP_CMP_MASKED_EQ' && (big(a.valueTwo) & ~big(a.value) & U64_MAX) !== 0n) {
        ctx.addIssue({ code: 'custom', path: ['valueTwo'], message: 'has bits outside the mask (value), so the condition could never hold' });
      }
    }));
  const rule = z
    .strictObject({
      names: z.array(syscallName).check(z.minLength(1, { message: 'must name at least one system call' })),
      action,
      errnoRet: z.nullish(errno),
      args: z.nullish(z.array(arg)),
    })
    .check(z.superRefine((r, ctx) => {
      if (r.errnoRet != null && !takesErrno(r.action)) {
        ctx.addIssue({ code: 'custom', path: ['errnoRet'], message: `only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, and the action is ${r.action}` });
      }
      const first = new Map<number, number>();
      (r.args ?? []).forEach((a, j) => {
        const seen = first.get(a.index);
        if (seen === undefined) first.set(a.index, j);
        else {
          ctx.addIssue({
            code: 'custom',
            path: ['args', j, 'index'],
            message: `a second condition on argument ${a.index} (the first is args[${seen}]); conditions of a rule must all hold — write separate rules instead`,
          });
        }
      });
    }));
  const noAgent = z.nullish(z.string().check(z.maxLength(0, { message: 'a seccomp agent is not supported by tsbox (no SCMP_ACT_NOTIFY)' })));
  return z
    .strictObject({
      defaultAction: action,
      defaultErrnoRet: z.nullish(errno),
      architectures: z.nullish(z.array(z.enum(SECCOMP_ARCHITECTURES))),
      flags: z.nullish(z.array(narrowed(z.enum(SECCOMP_FLAGS), (f) => f === 'SECCOMP_FILTER_FLAG_TSYNC', 'is not supported by tsbox: filters are loaded without flags'))),
      listenerPath: noAgent,
      listenerMetadata: noAgent,
      syscalls: z.nullish(z.array(rule)),
    })
    .check(z.superRefine((p, ctx) => {
      if (p.defaultErrnoRet != null && !takesErrno(p.defaultAction)) {
        ctx.addIssue({
          code: 'custom',
          path: ['defaultErrnoRet'],
          message: `only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, and the default action is ${p.defaultAction}`,
        });
      }
    }));
}

// Both are built on first use: a profile is rarely given, and building them
// costs a start of the CLI 1-2 ms.
/** The OCI `linux.seccomp` object, as the API takes it (numbers above 2^53 as BigInts). */
export const ociSeccompProfileSchema = z.lazy(() => profileSchema(true));
/** The same, for JSON read from a file (its text, not the parsed numbers, goes to Rust). */
const fileProfileSchema = z.lazy(() => profileSchema(false));

export type OciSeccompProfile = z.input<typeof ociSeccompProfileSchema>;

/**
 * The `seccomp` option (`--security-opt seccomp=...`): `'default'` (tsbox's
 * default profile), `'unconfined'` (no filter), the path of an OCI profile in
 * JSON (`./default` for a file named like a keyword), or a profile object.
 */
export type SeccompOption = 'default' | 'unconfined' | (string & {}) | OciSeccompProfile;

export const seccompOptionSchema = z
  .custom<SeccompOption>((v) => typeof v === 'string' || (typeof v === 'object' && v !== null && !Array.isArray(v)), {
    message: "must be 'default', 'unconfined', the path of an OCI seccomp profile (JSON), or a profile object",
  })
  .check(z.superRefine((v, ctx) => {
    if (typeof v === 'string') {
      if (v.length === 0 || v.includes('\0')) ctx.addIssue({ code: 'custom', message: "must be 'default', 'unconfined' or a file path (non-empty, without NUL)" });
      return;
    }
    // Issues keep their paths below the option: `seccomp.syscalls[0].action`.
    const r = ociSeccompProfileSchema.safeParse(v);
    if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ ...issue });
  }));

/** Formats a JSON path as the docs write them: `syscalls[3].names[1]`. */
function jsonPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(profile)';
}

/** Each problem of a failed parse with its JSON path; unknown keys one by one. */
export function seccompIssues(error: z.core.$ZodError): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  for (const i of error.issues) {
    if (i.code === 'unrecognized_keys') for (const k of i.keys) issues.push({ path: jsonPath([...i.path, k]), message: 'unknown field' });
    else issues.push({ path: jsonPath(i.path), message: i.message });
  }
  return issues;
}

function configError(path: string, issues: { path: string; message: string }[]): TsboxError {
  const [first, ...rest] = issues;
  const more = rest.length > 0 ? ` (and ${rest.length} more: ${rest.map((i) => `${i.path}: ${i.message}`).join('; ')})` : '';
  return new TsboxError(
    { step: 'config', errno: 0, path, detail: `${first!.path}: ${first!.message}${more}`, hint: 'a profile is an OCI runtime-spec linux.seccomp object; tsbox\'s default profile (seccompDefaultProfile() of the addon) is one to start from' },
    { issues },
  );
}

export interface SeccompProfileFile {
  /** The absolute path read. */
  path: string;
  /** The file's text, as it goes to the compiler (large numbers stay exact). */
  text: string;
  profile: z.output<typeof fileProfileSchema>;
}

/**
 * Reads and checks an OCI seccomp profile file. Throws a TsboxError with step
 * `config`, the file as its path, and the JSON path of each problem in its
 * message and `issues`.
 */
export function loadSeccompProfile(file: string, cwd: string = process.cwd()): SeccompProfileFile {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw fromSystemError('config', err, 'read the seccomp profile', 'pass the path of a JSON file holding an OCI linux.seccomp object');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw configError(path, [{ path: '(profile)', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  const r = fileProfileSchema.safeParse(json);
  if (!r.success) throw configError(path, seccompIssues(r.error));
  return { path, text, profile: r.data };
}

/** JSON for a profile object, BigInts written as exact integers. */
export function seccompProfileJson(profile: OciSeccompProfile): string {
  const marks: string[] = [];
  const text = JSON.stringify(profile, (_key, v: unknown) => {
    if (typeof v !== 'bigint') return v;
    marks.push(v.toString());
    return `\u0000u64:${marks.length - 1}\u0000`;
  });
  // A marker holds a NUL, which no string of a valid profile contains.
  return text.replace(/"\\u0000u64:(\d+)\\u0000"/g, (_m, i: string) => marks[Number(i)]!);
}

/** The addon's compiler: profile JSON (null: the default profile) to BPF bytes. */
export type CompileSeccomp = (profileJson: string | null) => Buffer;

/**
 * The plan's `seccomp` field for a validated option: the compiled program as
 * hex, or null for `unconfined`. Compilation happens here, in the parent, and
 * the addon caches programs by profile text.
 */
export function seccompProgram(option: SeccompOption | undefined, compile: CompileSeccomp, cwd: string = process.cwd()): string | null {
  if (option === 'unconfined') return null;
  let json: string | null = null;
  let source = 'seccomp';
  if (typeof option === 'string' && option !== 'default') {
    const file = loadSeccompProfile(option, cwd);
    json = file.text;
    source = file.path;
  } else if (typeof option === 'object') {
    json = seccompProfileJson(option);
  }
  try {
    return compile(json).toString('hex');
  } catch (err) {
    const message = (err as Error).message.replace(/^seccomp profile: /, '');
    // The compiler's messages are `JSON.PATH: problem`; keep that as the issue.
    const m = /^([^:]+): (.*)$/s.exec(message);
    throw configError(source, [{ path: m?.[1] ?? '(profile)', message: m?.[2] ?? message }]);
  }
}
