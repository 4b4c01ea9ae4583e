/**
 * The `seccomp` option: `default`, `unconfined`, the path of an OCI
 * `linux.seccomp` profile, or a profile object; reading a profile file; and
 * turning the option into the compiled program the launch plan carries.
 *
 * Profiles are validated once, in Rust (tsbox_core::seccomp, reached through
 * the addon): every problem comes back with its JSON path, and is reported
 * here as a config error. Nothing here repeats its rules; the one check made
 * in TypeScript is one Rust cannot make, that a number in a profile object
 * had not already lost precision in JavaScript.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import * as z from 'zod/mini';

import { TsboxError, fromSystemError } from '../errors.js';
import { once } from './lazy.js';
import './locale.js';

/** A 64-bit value: numbers up to 2^53, BigInts above (numbers lose precision there). */
type U64 = number | bigint;

/**
 * An OCI runtime-spec `linux.seccomp` profile. The type is a guide for
 * callers; the rules (actions, operators, errno ranges, system call names,
 * what tsbox cannot honour) are checked by the compiler, with JSON paths.
 */
export interface OciSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number | null;
  architectures?: string[] | null;
  flags?: string[] | null;
  listenerPath?: string | null;
  listenerMetadata?: string | null;
  syscalls?: { names: string[]; action: string; errnoRet?: number | null; args?: { index: number; value: U64; valueTwo?: U64; op: string }[] | null }[] | null;
}

/**
 * The `seccomp` option (`--security-opt seccomp=...`): `'default'` (tsbox's
 * default profile), `'unconfined'` (no filter), the path of an OCI profile in
 * JSON (`./default` for a file named like a keyword), or a profile object.
 */
export type SeccompOption = 'default' | 'unconfined' | (string & {}) | OciSeccompProfile;

export const seccompOptionSchema = once(() =>
  z
    .custom<SeccompOption>((v) => typeof v === 'string' || (typeof v === 'object' && v !== null && !Array.isArray(v)), {
      message: "must be 'default', 'unconfined', the path of an OCI seccomp profile (JSON), or a profile object",
    })
    .check(z.superRefine((v, ctx) => {
      if (typeof v === 'string') {
        if (v.length === 0 || v.includes('\0')) ctx.addIssue({ code: 'custom', message: "must be 'default', 'unconfined' or a file path (non-empty, without NUL)" });
        return;
      }
      // A profile object is checked where it is compiled (seccompProgram), by Rust.
    })),
);

function configError(path: string, issues: { path: string; message: string }[]): TsboxError {
  const [first, ...rest] = issues;
  const more = rest.length > 0 ? ` (and ${rest.length} more: ${rest.map((i) => `${i.path}: ${i.message}`).join('; ')})` : '';
  return new TsboxError(
    { step: 'config', errno: 0, path, detail: `${first!.path}: ${first!.message}${more}`, hint: 'a profile is an OCI runtime-spec linux.seccomp object; tsbox\'s default is one to start from: `tsbox seccomp default > profile.json`, or defaultSeccompProfile() in the API' },
    { issues },
  );
}

export interface SeccompProfileFile {
  /** The absolute path read. */
  path: string;
  /** The file's text, as it goes to the compiler (large numbers stay exact). */
  text: string;
}

/** Reads an OCI seccomp profile file; the compiler checks what it says. */
export function loadSeccompProfile(file: string, cwd: string = process.cwd()): SeccompProfileFile {
  const path = resolve(cwd, file);
  try {
    return { path, text: readFileSync(path, 'utf8') };
  } catch (err) {
    throw fromSystemError('config', err, 'read the seccomp profile', 'pass the path of a JSON file holding an OCI linux.seccomp object');
  }
}

/** The JSON path of every number in `v` that JavaScript cannot hold exactly. */
function inexactNumbers(v: unknown, path: string, out: string[]): string[] {
  if (typeof v === 'number' && !Number.isSafeInteger(v) && Number.isInteger(v)) out.push(path);
  else if (Array.isArray(v)) v.forEach((item, i) => inexactNumbers(item, `${path}[${i}]`, out));
  else if (typeof v === 'object' && v !== null) for (const [k, item] of Object.entries(v)) inexactNumbers(item, path ? `${path}.${k}` : k, out);
  return out;
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

/** One problem of a profile, from the compiler: its JSON path and what is wrong. */
export interface SeccompProblem {
  path: string;
  message: string;
}

/** The addon's compiler and validator (kept out of the plan builder so unit tests need no addon). */
export interface SeccompCompiler {
  /**
   * Profile JSON (null: tsbox's default) to BPF bytes; throws on a bad
   * profile. `agent`: whether the container hands a seccomp agent the
   * listener of SCMP_ACT_NOTIFY rules (an OCI bundle's); without one each
   * such rule is a problem.
   */
  compileSeccomp: (profileJson: string | null, agent?: boolean | null) => Buffer;
  /** Every problem of a profile, with its JSON path (the one validator, in Rust), `agent` as for compileSeccomp. */
  seccompProblems: (profileJson: string, agent?: boolean | null) => SeccompProblem[];
  /** An OCI bundle's profile as runc takes it: unknown names left out, one action per call. */
  seccompRelax?: (profileJson: string) => string;
}

/** The index of a profile object's first SCMP_ACT_NOTIFY rule, or -1. */
export function notifyRule(profile: unknown): number {
  const rules = (profile as { syscalls?: unknown } | null | undefined)?.syscalls;
  return Array.isArray(rules) ? rules.findIndex((r) => (r as { action?: unknown } | null)?.action === 'SCMP_ACT_NOTIFY') : -1;
}

/**
 * The plan's `seccomp` field for the option: the compiled program as hex, or
 * null for `unconfined`. Compilation happens here, in the parent, and the
 * addon caches programs by profile text. A bad profile is a config error
 * naming the file (or `seccomp`, for an object) with the JSON path of each
 * problem.
 */
export function seccompProgram(option: SeccompOption | undefined, compiler: SeccompCompiler, cwd: string = process.cwd(), relaxed = false): string | null {
  if (option === 'unconfined') return null;
  let json: string | null = null;
  // Where the problems are: a file's own paths, or below the option.
  let source = 'seccomp';
  let under = (p: string) => (p === '(profile)' ? 'seccomp' : `seccomp.${p}`);
  if (typeof option === 'string' && option !== 'default') {
    const file = loadSeccompProfile(option, cwd);
    json = file.text;
    source = file.path;
    under = (p) => p;
  } else if (typeof option === 'object') {
    const inexact = inexactNumbers(option, '', []);
    if (inexact.length > 0) {
      throw configError(source, inexact.map((p) => ({ path: under(p), message: 'must be an integer from 0 to 2^64-1 (above 2^53, a BigInt: numbers lose precision there)' })));
    }
    json = seccompProfileJson(option);
  }
  // An OCI runtime takes its callers' profiles (podman's, Docker's) as runc does.
  if (relaxed && json !== null && compiler.seccompRelax) json = compiler.seccompRelax(json);
  // Only an OCI bundle's first process hands a seccomp agent its listener
  // (linux.seccomp.listenerPath): elsewhere the compiler refuses each
  // SCMP_ACT_NOTIFY rule, whose call would fail with ENOSYS.
  const agent = relaxed;
  try {
    return compiler.compileSeccomp(json, agent).toString('hex');
  } catch (err) {
    const problems = json === null ? [] : compiler.seccompProblems(json, agent);
    // The default profile failing is a tsbox bug or a host the compiler does not know: say what it said.
    const issues = problems.length > 0 ? problems : [{ path: '(profile)', message: (err as Error).message }];
    throw configError(source, issues.map((i) => ({ path: under(i.path), message: i.message })));
  }
}
