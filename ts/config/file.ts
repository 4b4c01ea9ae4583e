/**
 * Config files: the same options the API and the CLI take, as JSON, plus an
 * optional `command`. `tsbox run --config FILE` and `loadConfig(FILE)`. The
 * JSON Schema for them ships as `tsbox/schema.json`.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

import { TsboxError, fromSystemError } from '../errors.js';
import { parseRunInput, type RunOptions } from './schema.js';

export interface ConfigFile {
  /** The command, when the file gives one. */
  command?: string[];
  /** The options, with relative paths resolved against the file's directory. */
  options: RunOptions;
}

/** Reads and validates a config file; every problem is reported with the file and its JSON path. */
export function loadConfig(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fromSystemError('config', err, `read the config file ${file}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TsboxError({ step: 'config', errno: 0, path: jsonErrorPlace(file, text, err as Error), detail: `not valid JSON: ${jsonErrorWhat(err as Error)}`, hint: null });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TsboxError({ step: 'config', errno: 0, path: file, detail: 'must hold a JSON object of options', hint: 'see the JSON Schema in tsbox/schema.json' });
  }
  const { command, $schema: _schema, ...raw } = json as Record<string, unknown>;
  const base = dirname(resolve(file));
  const rel = (p: unknown) => (typeof p === 'string' && p !== '' && !isAbsolute(p) ? resolve(base, p) : p);
  const options: Record<string, unknown> = { ...raw };
  if ('rootfs' in options) options.rootfs = rel(options.rootfs);
  if (typeof options.seccomp === 'string' && !['default', 'unconfined'].includes(options.seccomp)) options.seccomp = rel(options.seccomp);
  // Bind sources of Docker --mount strings and objects, as volumes'.
  if (Array.isArray(options.mounts)) {
    options.mounts = options.mounts.map((m: unknown) => {
      if (typeof m === 'string') {
        return m
          .split(',')
          .map((field) => {
            const eq = field.indexOf('=');
            const key = eq < 0 ? field : field.slice(0, eq);
            return (key === 'source' || key === 'src') && eq > 0 ? `${key}=${rel(field.slice(eq + 1)) as string}` : field;
          })
          .join(',');
      }
      if (typeof m === 'object' && m !== null && 'source' in m) return { ...m, source: rel(m.source) };
      return m;
    });
  }
  if (Array.isArray(options.volumes)) {
    options.volumes = options.volumes.map((v: unknown) => {
      if (typeof v === 'string') {
        const i = v.indexOf(':');
        return i > 0 ? `${rel(v.slice(0, i)) as string}${v.slice(i)}` : v;
      }
      if (typeof v === 'object' && v !== null && 'source' in v) return { ...v, source: rel((v).source) };
      return v;
    });
  }
  try {
    // Validate now, so that a bad file fails here, naming itself.
    parseRunInput(command ?? ['(from the command line)'], options);
  } catch (err) {
    if (err instanceof TsboxError) {
      throw new TsboxError({ step: 'config', errno: 0, path: `${file}: ${err.path ?? ''}`, detail: err.message.replace(/^config\([^)]*\): /, ''), hint: err.hint ?? null }, { issues: [...err.issues] });
    }
    throw err;
  }
  return { ...(command !== undefined ? { command: command as string[] } : {}), options: options };
}

/** `FILE:LINE:COLUMN` of a JSON.parse error (V8 gives a character position), or FILE. */
export function jsonErrorPlace(file: string, text: string, err: Error): string {
  const m = /at position (\d+)/.exec(err.message);
  const at = m ? Number(m[1]) : /Unexpected end of JSON input/.test(err.message) ? text.length : -1;
  if (at < 0) return file;
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  const column = at - before.lastIndexOf('\n');
  return `${file}:${line}:${column}`;
}

/** The problem of a JSON.parse error, without V8's position and context (the place says where). */
function jsonErrorWhat(err: Error): string {
  return err.message.replace(/ in JSON at position \d+.*$/s, '').replace(/ \(line \d+ column \d+\)$/, '');
}
