/**
 * The one error type of tsbox. Every failure names the step that failed, the
 * errno, the path or value involved, and a hint (DESIGN.md, Errors).
 */

import { ERRNO_NAMES, EXEC_EXIT_CODES, EXIT_RUNTIME } from './generated/tables.js';

/** The symbolic name of an errno (tsbox_core::errno_name's table). */
export function errnoName(errno: number): string {
  return errno === 0 ? 'error' : (ERRNO_NAMES[errno] ?? `errno ${errno}`);
}

/** TsboxError's `code`: `TSBOX_<STEP>[_<ERRNO NAME>]`. */
export function errorCode(step: string, errno: number): string {
  const name = errno === 0 ? '' : `_${(ERRNO_NAMES[errno] ?? `ERRNO_${errno}`).toUpperCase()}`;
  return `TSBOX_${step.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}${name}`;
}

/** The fields of a failure report, as tsbox-init sends them. */
export interface FailureReport {
  step: string;
  errno: number;
  path?: string | null;
  detail: string;
  hint?: string | null;
}

/** Thrown for every tsbox failure: bad configuration, a failed setup step, a command that could not start. */
export class TsboxError extends Error {
  override readonly name = 'TsboxError';
  /** The setup step that failed, e.g. `pivot_root`, `exec`, `config`. */
  readonly step: string;
  /** The errno of the failed system call; 0 when no system call failed. */
  readonly errno: number;
  /** The path or value involved, when there is one. */
  readonly path: string | undefined;
  /** What to do about it, when tsbox knows. */
  readonly hint: string | undefined;
  /** The exit status the CLI uses: 125 runtime error, 126 not executable, 127 not found. */
  readonly exitCode: number;
  /** For configuration errors: each problem with its JSON path. */
  readonly issues: readonly { path: string; message: string }[];
  /**
   * A stable name to switch on: `TSBOX_` and the step, with the errno's name
   * when a system call failed: `TSBOX_CONFIG`, `TSBOX_OPEN_ROOTFS_ENOENT`,
   * `TSBOX_EXEC_ENOENT` (command not found), `TSBOX_CGROUP_ERANGE`.
   */
  readonly code: string;

  constructor(report: FailureReport, options?: { cause?: unknown; issues?: { path: string; message: string }[] }) {
    // The message is what reaches a terminal: its path and detail may carry
    // a container's, a registry's or an archive's text (a file name, a media
    // type, a token realm), so their control characters are escaped here,
    // whatever the caller did. The fields keep the text as it was.
    const step = terminalSafe(report.step);
    const target = report.path ? `(${terminalSafe(report.path)})` : '';
    const detail = terminalSafe(report.detail);
    super(report.errno === 0 ? `${step}${target}: ${detail}` : `${step}${target}: ${errnoName(report.errno)} — ${detail}`, options?.cause ? { cause: options.cause } : undefined);
    this.step = report.step;
    this.errno = report.errno;
    this.path = report.path ?? undefined;
    this.hint = report.hint ?? undefined;
    this.issues = options?.issues ?? [];
    this.exitCode = exitCodeFor(report.step, report.errno);
    this.code = errorCode(report.step, report.errno);
  }

  /** The one line the CLI prints: message, then the hint (escaped as the message is). */
  toLine(): string {
    return this.hint ? `${this.message}; ${terminalSafe(this.hint)}` : this.message;
  }
}

/** Docker's conventions: 127 command not found, 126 not executable, 125 anything else (tsbox_core::exit_code_for). */
export function exitCodeFor(step: string, errno: number): number {
  return step === 'exec' ? (EXEC_EXIT_CODES[errno] ?? EXIT_RUNTIME) : EXIT_RUNTIME;
}

/**
 * Text from hostile input (a name in an archive, a registry's header) as an
 * error shows it: control characters, bidirectional overrides and
 * backslashes escaped (`\x1b`, `\u{202e}`), long text cut, so that it can
 * neither drive the terminal nor break the CLI's one line. The unpacker's
 * (Rust's `printable`) does the same.
 */
export function printable(text: string, max = 512): string {
  const out = text.replace(/[\\\p{Cc}\u200b-\u200f\u202a-\u202e\u2066-\u2069]/gu, (c) => (c === '\\' ? '\\\\' : escapeChar(c)));
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

/** One character as printable() shows it: `\x1b`, `\u{202e}`. */
function escapeChar(c: string): string {
  const n = c.codePointAt(0)!;
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
}

/**
 * What TsboxError's message does to every path, detail and hint: the
 * characters printable() escapes but the backslash, so that text a caller
 * made printable() already is shown as it is (not escaped twice), and text
 * it did not can still not drive the terminal or break the line.
 */
function terminalSafe(text: string): string {
  return text.replace(/[\p{Cc}\u200b-\u200f\u202a-\u202e\u2066-\u2069]/gu, escapeChar);
}

/** Wraps a Node.js system error (from fs, child_process) as a step failure. */
export function fromSystemError(step: string, err: unknown, detail: string, hint?: string): TsboxError {
  const e = err as NodeJS.ErrnoException;
  const errno = typeof e?.errno === 'number' ? Math.abs(e.errno) : 0;
  return new TsboxError({ step, errno, path: e?.path ?? null, detail: `${detail}${e?.message ? ` (${e.message})` : ''}`, hint: hint ?? null }, { cause: err });
}

/** The error `wait()` rejects with when the AbortSignal fired (as child_process does). */
export class AbortError extends Error {
  override readonly name = 'AbortError';
  readonly code = 'ABORT_ERR';
  constructor(cause: unknown) {
    super('The operation was aborted', { cause });
  }
}

/**
 * The report the addon threw as JSON (errno, path, detail, hint: the
 * unpacker's, export's flattening); `where` (the layer, the archive) goes
 * before its path. A message that is no report stays the detail, at `where`.
 */
export function nativeReport(err: unknown, where: string): Omit<FailureReport, 'step'> {
  const message = err instanceof Error ? err.message : String(err);
  try {
    const r = JSON.parse(message) as { errno: number; path: string; detail: string; hint: string | null };
    return { errno: r.errno, path: `${where}: ${r.path}`, detail: r.detail, hint: r.hint };
  } catch {
    return { errno: 0, path: where, detail: message, hint: null };
  }
}

/** nativeReport() as a TsboxError of `step`. */
export function fromNativeReport(err: unknown, step: string, where: string): TsboxError {
  return new TsboxError({ step, ...nativeReport(err, where) }, { cause: err });
}
