// splitArgs and parseEnv (ts/cli/args.ts): tsbox's options end at `--` or at the
// first positional; everything after belongs to the container's command.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { ArgsDef } from 'citty';
import { describe, expect, it } from 'vitest';

import { containerArgs, envFromFlags, parseDuration, parseEnv, REFUSED_RUN_FLAGS, REFUSED_RUN_SHORT, splitArgs } from '../../ts/cli/args.js';
import { rejection } from '../support/errors.js';

const split = (argv: string[]) => splitArgs(argv, containerArgs, 'run');


describe('splitArgs: where the options end', () => {
  it('ends the options at the first positional', () => {
    const s = split(['--trace', 'sh', '-c', 'x']);
    expect(s.command).toEqual(['sh', '-c', 'x']);
    expect(s.values.get('trace')).toBe(true);
    expect([...s.values.keys()]).toEqual(['trace']);
    expect(s.help).toBe(false);
  });

  it('gives tokens after the command that look like options to the command', () => {
    const s = split(['--rootfs', '/r', 'ls', '--rootfs', '/other', '-e', 'A=1', '--bogus', '--no-init', '-w/x']);
    expect(s.command).toEqual(['ls', '--rootfs', '/other', '-e', 'A=1', '--bogus', '--no-init', '-w/x']);
    expect(s.values.get('rootfs')).toBe('/r');
    expect(s.values.has('env')).toBe(false);
    expect(s.values.has('init')).toBe(false);
    expect(s.values.has('workdir')).toBe(false);
  });

  it('ends the options at `--`, which is not part of the command', () => {
    const s = split(['--workdir=/a', '--', '-x', '--', '--trace']);
    expect(s.command).toEqual(['-x', '--', '--trace']);
    expect(s.values.get('workdir')).toBe('/a');
    expect(s.values.has('trace')).toBe(false);
  });

  it('treats a lone `-` as the first positional', () => {
    expect(split(['-', 'x']).command).toEqual(['-', 'x']);
  });

  it('returns no values and the whole argv as the command when there are no options', () => {
    const s = split(['sh', '-c', 'echo hi']);
    expect(s.values.size).toBe(0);
    expect(s.command).toEqual(['sh', '-c', 'echo hi']);
  });

  it('returns an empty command when only options are given', () => {
    const s = split(['--trace']);
    expect(s.command).toEqual([]);
    expect(s.values.get('trace')).toBe(true);
  });
});

describe('splitArgs: option forms', () => {
  it('rejects an unknown long option, naming the token', () => {
    const e = rejection(() => split(['--bogus', 'sh']));
    expect(e.step).toBe('config');
    expect(e.path).toBe('--bogus');
    expect(e.message).toContain('--bogus');
    expect(e.message).toMatch(/unknown option/);
    expect(e.hint).toContain('tsbox run --help');
  });

  it('names an unknown option without its inline value', () => {
    const e = rejection(() => split(['--bogus=1', 'sh']));
    expect(e.path).toBe('--bogus');
    expect(e.message).toContain('--bogus');
    expect(e.message).not.toContain('--bogus=1');
  });

  it('rejects an unknown short option, naming it', () => {
    const e = rejection(() => split(['-x', 'sh']));
    expect(e.path).toBe('-x');
  });

  it('does not accept --no- on a string option', () => {
    expect(rejection(() => split(['--no-rootfs', 'sh'])).path).toBe('--no-rootfs');
  });

  it('sets init=false for --no-init, init=true for --init', () => {
    expect(split(['--no-init', 'sh']).values.get('init')).toBe(false);
    expect(split(['--init', 'sh']).values.get('init')).toBe(true);
  });

  it('accepts true/false as a boolean inline value', () => {
    expect(split(['--init=false', 'sh']).values.get('init')).toBe(false);
    expect(split(['--trace=true', 'sh']).values.get('trace')).toBe(true);
    expect(split(['--trace=false', 'sh']).values.get('trace')).toBe(false);
  });

  it('rejects a boolean given a non-boolean inline value, naming the option', () => {
    const e = rejection(() => split(['--trace=yes', 'sh']));
    expect(e.step).toBe('config');
    expect(e.path).toBe('--trace');
    expect(e.message).toContain('"yes"');
  });

  it('does not take the next token as the value of a boolean', () => {
    const s = split(['--trace', 'false']);
    expect(s.values.get('trace')).toBe(true);
    expect(s.command).toEqual(['false']);
  });

  it('accumulates repeated -e/--env in order, across forms', () => {
    const s = split(['-e', 'A=1', '--env', 'B=2', '-eC=3', '--env=D=4', '-e', 'A=5', 'sh']);
    expect(s.values.get('env')).toEqual(['A=1', 'B=2', 'C=3', 'D=4', 'A=5']);
    expect(s.command).toEqual(['sh']);
  });

  it('reads short options with attached values: -w/tmp and -eA=1', () => {
    const s = split(['-w/tmp', '-eA=1', 'sh']);
    expect(s.values.get('workdir')).toBe('/tmp');
    expect(s.values.get('env')).toEqual(['A=1']);
    expect(s.command).toEqual(['sh']);
  });

  it('reads a short option with its value as the next token', () => {
    const s = split(['-w', '/srv', 'sh']);
    expect(s.values.get('workdir')).toBe('/srv');
    expect(s.command).toEqual(['sh']);
  });

  it('reads an inline value: --rootfs=/x, keeping any further "="', () => {
    const s = split(['--rootfs=/x', '--hostname=a=b', 'sh']);
    expect(s.values.get('rootfs')).toBe('/x');
    expect(s.values.get('hostname')).toBe('a=b');
  });

  it('takes the next token as a string value even when it looks like an option', () => {
    const s = split(['--hostname', '--trace', 'sh']);
    expect(s.values.get('hostname')).toBe('--trace');
    expect(s.values.has('trace')).toBe(false);
    expect(s.command).toEqual(['sh']);
  });

  it('keeps the last value of a repeated single-valued option', () => {
    expect(split(['--rootfs', '/a', '--rootfs', '/b', 'sh']).values.get('rootfs')).toBe('/b');
  });

  it.each([[['--rootfs']], [['--trace', '--hostname']], [['-e']], [['-w']]])(
    'rejects a string option at the end without a value: %j',
    (argv) => {
      const e = rejection(() => split(argv));
      expect(e.step).toBe('config');
      const long = { '--rootfs': '--rootfs', '--hostname': '--hostname', '-e': '--env', '-w': '--workdir' }[argv.at(-1)!]!;
      expect(e.path).toBe(long);
      expect(e.message).toContain(long);
      expect(e.message).toMatch(/needs a value/);
    },
  );

  it('maps a camelCase option to its kebab-case flag', () => {
    const def = { readOnly: { type: 'boolean' }, memoryLimit: { type: 'string' } } as const satisfies ArgsDef;
    const s = splitArgs(['--read-only', '--memory-limit', '1g', 'sh'], def, 'x');
    expect(s.values.get('readOnly')).toBe(true);
    expect(s.values.get('memoryLimit')).toBe('1g');
    expect(s.command).toEqual(['sh']);
  });
});

describe('splitArgs: help', () => {
  it('sets help for --help, and for -h where the command gives -h no other meaning', () => {
    expect(split(['--help']).help).toBe(true);
    expect(split(['--trace', '--help', 'sh']).help).toBe(true);
    // run's -h is the hostname, as Docker's.
    const s = split(['-h', 'box', 'sh']);
    expect(s.help).toBe(false);
    expect(s.values.get('hostname')).toBe('box');
    expect(s.command).toEqual(['sh']);
    const other = splitArgs(['-h'], { all: { type: 'boolean', alias: 'a' } }, 'ps');
    expect(other.help).toBe(true);
  });

  it('does not set help for -h/--help after the command: they are the command\'s', () => {
    const s = split(['sh', '-h']);
    expect(s.help).toBe(false);
    expect(s.command).toEqual(['sh', '-h']);
    const t = split(['--', '--help']);
    expect(t.help).toBe(false);
    expect(t.command).toEqual(['--help']);
  });
});

describe('parseEnv', () => {
  it('parses KEY=VALUE, keeping every "=" after the first in the value', () => {
    expect(parseEnv(['A=1', 'B=x=y=z', 'C='], {})).toEqual({ A: '1', B: 'x=y=z', C: '' });
  });

  it('lets a later entry override an earlier one', () => {
    expect(parseEnv(['A=1', 'A=2'], {})).toEqual({ A: '2' });
  });

  it('copies KEY alone from the supplied environment, and skips it when absent there', () => {
    const from = { HOME: '/home/me', EMPTY: '' };
    expect(parseEnv(['HOME', 'EMPTY', 'MISSING', 'X=1'], from)).toEqual({ HOME: '/home/me', EMPTY: '', X: '1' });
  });

  it('reads KEY alone from process.env by default', () => {
    const key = `TSBOX_UNIT_${process.pid}`;
    process.env[key] = 'from-process';
    try {
      expect(parseEnv([key])).toEqual({ [key]: 'from-process' });
    } finally {
      delete process.env[key];
    }
    expect(parseEnv([key])).toEqual({});
  });

  it('rejects an entry with an empty name, naming it', () => {
    const e = rejection(() => parseEnv(['A=1', '=x'], {}));
    expect(e.step).toBe('config');
    expect(e.path).toContain('=x');
    expect(e.message).toMatch(/empty/);
  });

  it('combines with splitArgs: -e values become the env object', () => {
    const s = split(['-e', 'A=1', '-eB=c=d', '-e', 'USER', 'sh']);
    expect(parseEnv(s.values.get('env') as string[], { USER: 'me' })).toEqual({ A: '1', B: 'c=d', USER: 'me' });
  });
});

describe('--env-file (issue 19, item 5)', () => {
  const withFile = (text: string, fn: (path: string) => void) => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-envfile-'));
    try {
      writeFileSync(join(dir, 'env'), text);
      fn(join(dir, 'env'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("reads Docker's format: KEY=VALUE as written, KEY copied when set, comments and blank lines skipped; -e wins", () => {
    withFile('# a comment\n\nA=1\n  B=two words \nC="quoted"\nD=x=y\nHOMEISH\nMISSING\nE=\r\n', (file) => {
      expect(envFromFlags([file], ['A=override'], { HOMEISH: '/home/u' })).toEqual({
        A: 'override',
        B: 'two words ',
        C: '"quoted"',
        D: 'x=y',
        HOMEISH: '/home/u',
        E: '',
      });
    });
  });

  it('names the file and line of a bad name, and a file that cannot be read', () => {
    withFile('A=1\nBAD NAME=2\n', (file) => {
      const e = rejection(() => envFromFlags([file], []));
      expect(e.path).toBe(`--env-file ${file}:2`);
      expect(e.message).toBe(`config(--env-file ${file}:2): the variable name "BAD NAME" contains whitespace`);
    });
    withFile('=x\n', (file) => expect(rejection(() => envFromFlags([file], [])).message).toMatch(/:1\): the variable name is empty$/));
    const missing = rejection(() => envFromFlags(['/nonexistent/tsbox.env'], []));
    expect(missing).toMatchObject({ step: 'config', errno: 2 });
    expect(missing.message).toMatch(/read the --env-file \/nonexistent\/tsbox.env/);
  });
});

describe('parseDuration: Docker\'s durations (issue 19)', () => {
  it('takes Go-style compound durations and plain seconds', () => {
    expect(parseDuration('500ms', '--timeout')).toBe(500);
    expect(parseDuration('30s', '--timeout')).toBe(30_000);
    expect(parseDuration('1h30m', '--timeout')).toBe(5_400_000);
    expect(parseDuration('2m3.5s', '--timeout')).toBe(123_500);
    expect(parseDuration('1.5h', '--timeout')).toBe(5_400_000);
    expect(parseDuration('10', '--timeout')).toBe(10_000);
    // Go's micro- and nanoseconds, µs written either way.
    expect(parseDuration('1500000\u00b5s', '--timeout')).toBe(1500);
    expect(parseDuration('1500000\u03bcs', '--timeout')).toBe(1500);
    expect(parseDuration('2500000us', '--timeout')).toBe(2500);
    expect(parseDuration('1s500000000ns', '--timeout')).toBe(1500);
  });

  it('refuses what is not one, naming the flag and the forms it takes', () => {
    for (const bad of ['', '1x', 'h', '1h30', '-5s', '0s', '1d']) {
      const e = rejection(() => parseDuration(bad, '--timeout'));
      expect(e.path, bad).toBe('--timeout');
      expect(e.message).toBe(`config(--timeout): "${bad}" is not a duration`);
      expect(e.hint).toMatch(/1h30m/);
    }
  });
});

describe('unknown flags (issue 19)', () => {
  it('suggest the flag meant, and none for one like no flag', () => {
    const def = containerArgs;
    expect(rejection(() => splitArgs(['--rootfss', '/x', 'true'], def, 'run')).message).toBe('config(--rootfss): unknown option; did you mean --rootfs?');
    expect(rejection(() => splitArgs(['--memroy=1g', 'true'], def, 'run')).message).toBe('config(--memroy): unknown option; did you mean --memory?');
    expect(rejection(() => splitArgs(['--bogus', 'true'], def, 'run')).message).toBe('config(--bogus): unknown option');
  });
});

describe('asFlagError: configuration errors said in flags (issue 19)', () => {
  it('names the flag and its value for options the flags gave, and keeps the paths of the rest', async () => {
    const { TsboxError } = await import('../../ts/errors.js');
    const { asFlagError } = await import('../../ts/cli/args.js');
    const err = new TsboxError(
      { step: 'config', errno: 0, path: 'capAdd[0]', detail: 'x', hint: null },
      {
        issues: [
          { path: 'capAdd[0]', message: '"NET_ADMINN": unknown capability' },
          { path: 'ulimits.nofle', message: 'unknown option; did you mean nofile?' },
          { path: 'memory', message: 'from a config file' },
        ],
      },
    );
    const given = new Map<string, unknown>([['cap-add', ['NET_ADMINN']], ['ulimit', ['nofle=1']]]);
    const e = asFlagError(err, given, { capAdd: ['NET_ADMINN'], ulimits: { nofle: 1 }, memory: 1 }) as InstanceType<typeof TsboxError>;
    expect(e.issues).toEqual([
      { path: '--cap-add NET_ADMINN', message: 'unknown capability' },
      { path: '--ulimit nofle', message: 'unknown option; did you mean nofile?' },
      { path: 'memory', message: 'from a config file' },
    ]);
    expect(e.message).toBe('config(--cap-add NET_ADMINN): unknown capability (and 2 more: --ulimit nofle: unknown option; did you mean nofile?; memory: from a config file)');
    // Anything else goes through as it is.
    const other = new Error('x');
    expect(asFlagError(other, given, {})).toBe(other);
    // So does an error none of whose problems the flags gave: a profile file's names the file.
    const file = new TsboxError({ step: 'config', errno: 0, path: '/p.json', detail: 'syscalls[0].action: unknown action' }, { issues: [{ path: 'syscalls[0].action', message: 'unknown action' }] });
    expect(asFlagError(file, given, {})).toBe(file);
  });
});

describe("Docker's flags tsbox run refuses (issue 19)", () => {
  it('are refused by name with why and what to do instead, in either form', () => {
    for (const [flag, why] of Object.entries(REFUSED_RUN_FLAGS)) {
      for (const argv of [[`--${flag}`, 'x', 'true'], [`--${flag}=x`, 'true']]) {
        const e = rejection(() => splitArgs(argv, containerArgs, 'run', REFUSED_RUN_FLAGS));
        expect(e.message, argv[0]).toBe(`config(--${flag}): not supported`);
        expect(e.hint).toBe(why);
      }
      // Where it is no Docker habit, it is just unknown.
      expect(rejection(() => splitArgs([`--${flag}`, 'true'], containerArgs, 'exec')).message).toMatch(/unknown option/);
    }
  });
});
