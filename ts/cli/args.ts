/**
 * Argument groups shared by the commands, and the splitter that separates
 * tsbox's options from the container's command: options end at `--` or at the
 * first positional, so `tsbox run sh -c 'x'` never reads `-c` as its own.
 */
import { readFileSync } from 'node:fs';

import type { ArgsDef } from 'citty';

import { fromSystemError, TsboxError } from '../errors.js';
import { didYouMean, kebab } from '../suggest.js';

/** Flags whose values accumulate when repeated (`-e A=1 -e B=2`). */
export const MULTIPLE = new Set<string>(['publish', 'expose', 'allow-host', 'allow-net', 'env', 'env-file', 'add-host', 'dns', 'dns-search', 'storage-opt', 'volume', 'tmpfs', 'mount', 'mask', 'unmask', 'group-add', 'cap-add', 'cap-drop', 'security-opt', 'uidmap', 'gidmap', 'ulimit', 'blkio-weight-device', 'cgroup-conf', 'device-read-bps', 'device-write-bps', 'device-read-iops', 'device-write-iops', 'cap', 'additional-gids', 'insecure-registry']);

/** The options every container-starting command takes; their names are the API's. */
export const containerArgs = {
  config: { type: 'string', valueHint: 'FILE', description: 'Read options (and the command) from a JSON file; flags override it. Schema: tsbox/schema.json' },
  detach: { type: 'boolean', alias: 'd', description: 'Run in the background: print the container id and leave it running (tsbox ps, exec, logs, stop, rm)' },
  name: { type: 'string', valueHint: 'NAME', description: 'A name for the container, unique until it is removed' },
  rm: { type: 'boolean', description: 'Remove the container when it ends (what an attached run does anyway)' },
  rootfs: {
    type: 'string',
    valueHint: 'DIR[:idmap]',
    description: "Root filesystem directory. Default: the host's root, read-only, with a fresh /proc, a minimal /dev and tmpfs /tmp and /run. :idmap shifts its ids into the container's (the default unless --writable-rootfs)",
  },
  network: {
    type: 'string',
    alias: 'net',
    valueHint: 'none|host|bridge|ns:PATH|container:NAME',
    description: "none (default): only its own loopback. bridge: as root an address on tsbox's bridge tsbox0 with NAT to the host's network, as an ordinary user pasta. host: the HOST'S network namespace, every interface and port (no network isolation). ns:PATH or container:NAME: join that namespace",
  },
  'allow-host': { type: 'string', valueHint: 'NAME[:PORT],...', description: 'Egress allowlist (--network bridge; as root, or through pasta): the container reaches these names, resolved by a resolver tsbox runs for it (with -d, in a keeper process that ends with it), and nothing else (repeatable)' },
  'allow-net': { type: 'string', valueHint: 'A.B.C.D[/BITS][:PORT],...', description: 'Egress allowlist (--network bridge; as root, or through pasta): these IPv4 networks too (repeatable)' },
  publish: { type: 'string', alias: 'p', valueHint: '[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]', description: 'Publish a container port on the host (repeatable; --network bridge)' },
  expose: { type: 'string', valueHint: 'PORT[-LAST][/tcp|udp]', description: 'Expose a port or a range of ports, beside the image\'s ExposedPorts: what -P publishes (repeatable)' },
  'publish-all': { type: 'boolean', alias: 'P', description: 'Publish every exposed port (--expose, the image\'s ExposedPorts) on a free host port (--network bridge; tsbox inspect shows which)' },
  'add-host': { type: 'string', valueHint: 'NAME:IP', description: 'Add a line to the container\'s /etc/hosts (repeatable)' },
  dns: { type: 'string', valueHint: 'IP', description: 'A nameserver for the container\'s /etc/resolv.conf, instead of the host\'s (repeatable)' },
  'dns-search': { type: 'string', valueHint: 'DOMAIN', description: 'A search domain for the container\'s /etc/resolv.conf, instead of the host\'s (repeatable)' },
  'log-max-size': { type: 'string', valueHint: 'SIZE', description: "With -d: the most the container's log keeps per file; a full one becomes the previous one (at most two). 0: no limit. Default: 32m" },
  'shm-size': { type: 'string', valueHint: 'SIZE', description: 'The size of /dev/shm. Default: 64m' },
  hostname: { type: 'string', alias: 'h', valueHint: 'NAME', description: "The container's host name (-h, as Docker's; --help is help). Default: 12 hex digits of the container id" },
  env: { type: 'string', alias: 'e', valueHint: 'KEY=VALUE', description: 'Set an environment variable (repeatable); KEY alone copies it from this environment' },
  'env-file': { type: 'string', valueHint: 'FILE', description: "Read environment variables from FILE (repeatable), as Docker's: KEY=VALUE lines, # comments; -e wins" },
  workdir: { type: 'string', alias: 'w', valueHint: 'DIR', description: 'Working directory inside the container. Default: /' },
  init: {
    type: 'boolean',
    default: true,
    negativeDescription: "Make the command itself PID 1, as contained.c and OCI runtimes do (it then ignores SIGINT/SIGTERM it has no handler for)",
    description: "Run tsbox's minimal init as PID 1: it forwards signals, reaps zombies and exits with the command's status",
  },
  trace: { type: 'boolean', description: 'Print every setup step with its time offset to stderr' },
  'read-only': { type: 'boolean', description: 'Mount the root read-only, with tmpfs /tmp and /run' },
  'writable-rootfs': {
    type: 'boolean',
    description: 'Write directly into the --rootfs directory (OCI bundle semantics). By default writes go to a throwaway overlay layer and the directory is never modified',
  },
  'storage-opt': {
    type: 'string',
    valueHint: 'size=SIZE',
    description: 'What the container may write outside its volumes (root and a read-only root\'s /tmp and /run, held in memory). Default: 1g or an eighth of RAM, whichever is smaller',
  },
  volume: {
    type: 'string',
    alias: 'v',
    valueHint: 'HOST:CONTAINER[:ro|rw][,idmap]',
    description: "Bind a host file or directory into the container (repeatable). With idmap, host root's files there are container root's, and container root's new files host root's",
  },
  tmpfs: { type: 'string', valueHint: 'PATH[:size=64m,mode=1777]', description: 'Mount a tmpfs (repeatable)' },
  mount: { type: 'string', valueHint: 'type=bind|tmpfs,source=..,target=..[,readonly]', description: "Docker's --mount syntax (repeatable)" },
  mask: { type: 'string', valueHint: 'PATH', description: 'Hide a path in addition to the default masked paths (/proc/kcore, /sys/firmware, ...) (repeatable)' },
  unmask: { type: 'string', valueHint: 'PATH|ALL', description: 'Do not mask or make read-only this default path; ALL for none of them (repeatable)' },
  tty: { type: 'boolean', alias: 't', description: 'Give the command a pseudo-terminal (with -i: an interactive shell, in raw mode, following the window size)' },
  interactive: { type: 'boolean', alias: 'i', description: 'Keep stdin attached (the default without -t)' },
  timeout: { type: 'string', valueHint: 'DURATION', description: 'Kill the container after this long: 500ms, 30s, 5m (plain numbers are seconds)' },
  user: { type: 'string', alias: 'u', valueHint: 'USER[:GROUP]', description: "Run as this user: a uid or a name from the rootfs's /etc/passwd. Default: root" },
  'group-add': { type: 'string', valueHint: 'GROUP', description: 'Add a supplementary group, by name or gid (repeatable)' },
  'cap-add': { type: 'string', valueHint: 'CAP', description: 'Add a capability to the default set: NET_ADMIN, CAP_SYS_PTRACE, ALL (repeatable)' },
  'cap-drop': { type: 'string', valueHint: 'CAP', description: 'Drop a capability from the default set; ALL for every one (repeatable)' },
  'security-opt': {
    type: 'string',
    valueHint: 'OPT',
    description: 'seccomp=unconfined|PATH (an OCI profile; default: tsbox\'s allowlist); no-new-privileges=false lets setuid binaries gain privileges (repeatable)',
  },
  userns: {
    type: 'string',
    valueHint: 'host',
    description: "host: share the host's user namespace — the container's root is then the host's REAL root. Default: a new user namespace",
  },
  uidmap: { type: 'string', valueHint: 'CONTAINER:HOST:SIZE', description: 'An explicit uid map line (repeatable); non-root callers need newuidmap' },
  gidmap: { type: 'string', valueHint: 'CONTAINER:HOST:SIZE', description: 'An explicit gid map line (repeatable); non-root callers need newgidmap' },
  memory: { type: 'string', alias: 'm', valueHint: 'SIZE', description: 'Memory limit: 64m, 1g, ..., at least 6m (the OOM killer acts beyond it; the report says oomKilled)' },
  'memory-swap': { type: 'string', valueHint: 'SIZE', description: 'Memory plus swap; -1 for unlimited swap' },
  'memory-reservation': { type: 'string', valueHint: 'SIZE', description: 'Soft memory limit (v2 memory.low)' },
  cpus: { type: 'string', valueHint: 'N', description: "CPUs' worth of time: 1.5 is 150ms per 100ms" },
  'cpu-shares': { type: 'string', valueHint: 'N', description: 'Relative CPU weight, 2..262144 (default 1024; converted to cpu.weight on v2)' },
  'cpu-quota': { type: 'string', valueHint: 'USEC', description: 'CPU time per period, in µs' },
  'cpu-period': { type: 'string', valueHint: 'USEC', description: 'The CFS period, in µs (default 100000)' },
  'cpuset-cpus': { type: 'string', valueHint: 'LIST', description: 'CPUs to run on: 0-3,5' },
  'cpuset-mems': { type: 'string', valueHint: 'LIST', description: 'Memory nodes to allocate from' },
  'pids-limit': { type: 'string', valueHint: 'N', description: 'Most processes at once (default 4096, or pid_max/16 when smaller); -1 for none' },
  'blkio-weight': { type: 'string', valueHint: 'N', description: 'Relative block I/O weight, 10..1000' },
  'blkio-weight-device': { type: 'string', valueHint: 'DEV:N', description: 'Block I/O weight on one device, 10..1000: /dev/sda:200 (repeatable)' },
  'device-read-bps': { type: 'string', valueHint: 'DEV:RATE', description: 'Read rate limit of a block device: /dev/sda:1mb (repeatable)' },
  'device-write-bps': { type: 'string', valueHint: 'DEV:RATE', description: 'Write rate limit of a block device (repeatable)' },
  'device-read-iops': { type: 'string', valueHint: 'DEV:N', description: 'Read operations per second of a block device (repeatable)' },
  'device-write-iops': { type: 'string', valueHint: 'DEV:N', description: 'Write operations per second of a block device (repeatable)' },
  'memory-swappiness': { type: 'string', valueHint: 'N', description: 'How readily the container is swapped out, 0..100 (cgroup v1 only)' },
  'oom-kill-disable': { type: 'boolean', description: 'At the memory limit, wait for memory instead of being OOM-killed (cgroup v1 only; needs --memory)' },
  'kernel-memory': { type: 'string', valueHint: 'BYTES', description: 'Kernel memory limit (cgroup v1 only)' },
  'cgroup-conf': { type: 'string', valueHint: 'KEY=VALUE', description: "A cgroup v2 file to write in the container's cgroup: memory.high=64m (repeatable; pure v2 only)" },
  'cgroup-parent': { type: 'string', valueHint: 'PATH', description: 'The cgroup to create the container under, e.g. /tsbox.slice' },
  ulimit: { type: 'string', valueHint: 'NAME=SOFT[:HARD]', description: 'A resource limit: nofile=1024:4096, core=0, nproc=unlimited (repeatable)' },
  'stop-signal': { type: 'string', valueHint: 'SIGNAL', description: "The signal tsbox stop sends first (default SIGTERM, or the image's StopSignal)" },
  report: { type: 'string', valueHint: 'FILE|-', description: 'Write the outcome as JSON (exit, oomKilled, time, cpu, peak memory and pids, limits, what an allowlist refused) to FILE, or - for stderr' },
  preset: { type: 'string', valueHint: 'contained', description: "Start from a preset: contained reproduces the choices of contained.c, the 500-line container program tsbox grew from (1 GiB, 256 shares, 64 pids, NOFILE 64, 0→10000 range 2000, its caps and seccomp rules)" },
  'rootfs-propagation': { type: 'string', valueHint: 'private|slave|shared|unbindable', description: 'Propagation of the container mounts. Default: private' },
} as const satisfies ArgsDef;

export interface Split {
  /** Option values by their long name. */
  values: Map<string, string | boolean | string[]>;
  command: string[];
  help: boolean;
}

function unknownOption(token: string, cmd: string, known: Iterable<string>): TsboxError {
  const name = token.replace(/^-+/, '').split('=')[0]!;
  const long = [...known].filter((k) => k.length > 1);
  return new TsboxError({
    step: 'config',
    errno: 0,
    path: token,
    detail: `unknown option${didYouMean(name, long, (k) => `--${k}`)}`,
    hint: `see \`tsbox ${cmd} --help\`; options go before the command, or put \`--\` before it`,
  });
}

/**
 * Docker's flags that `tsbox run` does not take, each with why and what to do
 * instead: refused by name, never taken and ignored.
 */
export const REFUSED_RUN_FLAGS: Readonly<Record<string, string>> = {
  privileged: 'tsbox has no privileged mode: each of its defaults is a boundary. Ask for what you need: --cap-add ALL, --security-opt seccomp=unconfined, --unmask ALL',
  device: 'tsbox gives a container only /dev/null, zero, full, random, urandom and tty; other host devices are not passed in yet',
  sysctl: 'tsbox does not set sysctls in a container yet',
  pid: "a container always has its own pid namespace in tsbox (sharing the host's would show and let it signal the host's processes)",
  ipc: "a container always has its own ipc namespace in tsbox (sharing the host's would expose the host's shared memory and message queues)",
  uts: "a container always has its own uts namespace in tsbox; set its name with -h/--hostname",
  'stop-timeout': 'give tsbox stop the time instead: tsbox stop -t SECONDS NAME',
};

/** Docker's one-letter forms of refused flags (none now: -P is --publish-all). */
export const REFUSED_RUN_SHORT: Readonly<Record<string, string>> = {};

/** Parses `argv` against `def`; rejects an unknown option by name (with why, when `refused` names it, or `refusedShort` its one-letter form). */
export function splitArgs(
  argv: readonly string[],
  def: ArgsDef,
  cmd: string,
  refused: Readonly<Record<string, string>> = {},
  refusedShort: Readonly<Record<string, string>> = {},
): Split {
  const byName = new Map<string, string>();
  for (const [name, d] of Object.entries(def)) {
    byName.set(name, name);
    byName.set(kebab(name), name);
    const aliases = 'alias' in d && d.alias ? (Array.isArray(d.alias) ? d.alias : [d.alias]) : [];
    for (const a of aliases) byName.set(a, name);
  }
  const values = new Map<string, string | boolean | string[]>();
  let help = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      i++;
      break;
    }
    if (!tok.startsWith('-') || tok === '-') break;
    // -h is help unless the command gives it a meaning (run: the hostname, as Docker's).
    if (tok === '--help' || (tok === '-h' && !byName.has('h'))) {
      help = true;
      continue;
    }
    const eq = tok.indexOf('=');
    const rawName = tok.replace(/^--?/, '').slice(0, eq < 0 ? undefined : eq - (tok.startsWith('--') ? 2 : 1));
    let inline: string | undefined = eq < 0 ? undefined : tok.slice(eq + 1);
    // A single dash takes one-letter names only (-e, -w), as getopt does.
    let name = tok.startsWith('--') || rawName.length === 1 ? byName.get(rawName) : undefined;
    let negated = false;
    if (name === undefined && rawName.startsWith('no-')) {
      const positive = byName.get(rawName.slice(3));
      if (positive !== undefined && def[positive]?.type === 'boolean') {
        name = positive;
        negated = true;
      }
    }
    // Bundled one-letter booleans: -it.
    if (name === undefined && !tok.startsWith('--') && eq < 0 && rawName.length > 1) {
      const all = [...rawName].map((c) => byName.get(c));
      if (all.every((n) => n !== undefined && def[n]?.type === 'boolean')) {
        for (const n of all) values.set(n!, true);
        continue;
      }
    }
    // A short flag with its value attached: -eFOO=1, -w/tmp.
    if (name === undefined && !tok.startsWith('--') && tok.length > 2) {
      const short = byName.get(tok.slice(1, 2));
      if (short !== undefined && def[short]?.type === 'string') {
        name = short;
        inline = tok.slice(2);
      }
    }
    const refusedName = tok.startsWith('--') ? rawName : refusedShort[rawName];
    if (name === undefined && refusedName !== undefined && refused[refusedName] !== undefined) {
      throw new TsboxError({ step: 'config', errno: 0, path: `--${refusedName}`, detail: 'not supported', hint: refused[refusedName] });
    }
    if (name === undefined) throw unknownOption(tok.slice(0, eq < 0 ? undefined : eq), cmd, byName.keys());
    const d = def[name]!;
    if (d.type === 'boolean') {
      if (inline !== undefined && (negated || (inline !== 'true' && inline !== 'false'))) {
        throw new TsboxError({ step: 'config', errno: 0, path: `--${name}`, detail: `takes no value (got ${JSON.stringify(inline)})`, hint: null });
      }
      values.set(name, negated ? false : inline !== 'false');
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) {
        throw new TsboxError({ step: 'config', errno: 0, path: `--${name}`, detail: `needs a value${'valueHint' in d && d.valueHint ? ` (${d.valueHint})` : ''}`, hint: null });
      }
      value = argv[++i]!;
    }
    if (MULTIPLE.has(name)) {
      const prev = values.get(name);
      values.set(name, [...(Array.isArray(prev) ? prev : []), value]);
    } else {
      values.set(name, value);
    }
  }
  return { values, command: argv.slice(i), help };
}

// Go's µs in either spelling: U+00B5 (micro sign) and U+03BC (Greek mu).
const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, '\u00b5s': 1e-3, '\u03bcs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration in milliseconds, as Docker's flags take them (Go's
 * time.ParseDuration): `500ms`, `30s`, `1h30m`, `1.5h`, `2m3.5s`; or a plain
 * number of seconds.
 */
export function parseDuration(s: string, flag: string): number {
  const text = s.trim();
  let ms = NaN;
  if (/^\d+(\.\d+)?$/.test(text)) ms = Number(text) * 1000;
  // Escaped: the CLI's bundle is ASCII (scripts/build.mjs).
  else if (/^(\d+(\.\d+)?(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$/.test(text)) {
    ms = 0;
    for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/g)) ms += Number(n) * DURATION_UNITS[unit!]!;
  }
  ms = Math.round(ms);
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new TsboxError({ step: 'config', errno: 0, path: flag, detail: `"${s}" is not a duration`, hint: 'write 500ms, 30s, 5m, 1h30m (units ms, s, m, h, as Docker\'s), or a number of seconds' });
  }
  return ms;
}

/**
 * The variables of `--env-file` files then `-e` entries, in that order (a
 * later one wins), as Docker reads them: a file has one `KEY=VALUE` per line,
 * taken as it is (no quotes, no expansion), `KEY` alone copied from this
 * environment when set, blank lines and `#` comments skipped.
 */
export function envFromFlags(files: readonly string[], entries: readonly string[], from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw fromSystemError('config', err, `read the --env-file ${file}`, 'pass a file of KEY=VALUE lines');
    }
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.replace(/^\s+/, '');
      if (line === '' || line.startsWith('#')) return;
      const eq = line.indexOf('=');
      const key = eq < 0 ? line : line.slice(0, eq);
      if (key === '' || /\s/.test(key)) {
        throw new TsboxError({ step: 'config', errno: 0, path: `--env-file ${file}:${i + 1}`, detail: key === '' ? 'the variable name is empty' : `the variable name "${key}" contains whitespace`, hint: 'write one KEY=VALUE per line' });
      }
      Object.assign(env, parseEnv([line], from, `--env-file ${file}:${i + 1}`));
    });
  }
  return Object.assign(env, parseEnv(entries, from));
}

/** `KEY=VALUE` entries (or `KEY`, copied from this process's environment) as an object. */
export function parseEnv(entries: readonly string[], from: NodeJS.ProcessEnv = process.env, where?: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf('=');
    if (eq === 0) throw new TsboxError({ step: 'config', errno: 0, path: where ?? `--env ${e}`, detail: 'the variable name is empty', hint: 'write KEY=VALUE' });
    if (eq < 0) {
      const v = from[e];
      if (v !== undefined) env[e] = v;
    } else {
      env[e.slice(0, eq)] = e.slice(eq + 1);
    }
  }
  return env;
}

/** Option keys whose flag is not their kebab-case name. */
const FLAG_OF: Record<string, string> = {
  cwd: 'workdir',
  volumes: 'volume',
  mounts: 'mount',
  ulimits: 'ulimit',
  uidMap: 'uidmap',
  gidMap: 'gidmap',
  maskedPaths: 'mask',
  storageSize: 'storage-opt',
  seccomp: 'security-opt',
  noNewPrivileges: 'security-opt',
};

/**
 * A configuration error about options the CLI made from flags, said in
 * flags: `config(--cap-add NET_ADMINN): unknown capability`, not the API's
 * `capAdd[0]`. Problems with options from a --config file keep their paths.
 */
export function asFlagError(err: unknown, given: Map<string, unknown>, options: Record<string, unknown>): unknown {
  if (!(err instanceof TsboxError) || err.step !== 'config' || err.issues.length === 0) return err;
  const issues = err.issues.map((i) => {
    const m = /^([A-Za-z]+)(?:\[(\d+)\])?(?:\.(.+))?$/.exec(i.path);
    if (!m) return i;
    const [, key, index, sub] = m as unknown as [string, string, string | undefined, string | undefined];
    const flag = FLAG_OF[key] ?? kebab(key);
    if (!given.has(flag)) return i;
    const v = options[key];
    const value: unknown = index !== undefined && Array.isArray(v) ? (v as unknown[])[Number(index)] : (sub ?? v);
    const shown = typeof value === 'string' || typeof value === 'number' ? ` ${String(value)}` : '';
    // The value is in the path now; the message need not repeat it.
    const prefix = [`${JSON.stringify(value)}: `, `${String(value)}: `].find((p) => shown && i.message.startsWith(p));
    return { path: `--${flag}${shown}`, message: prefix ? i.message.slice(prefix.length) : i.message };
  });
  // Nothing the flags gave: the error stands as it was made (a profile file's
  // problems name the file).
  if (issues.every((i, n) => i === err.issues[n])) return err;
  const [first, ...rest] = issues;
  const more = rest.length > 0 ? ` (and ${rest.length} more: ${rest.map((i) => `${i.path}: ${i.message}`).join('; ')})` : '';
  return new TsboxError({ step: 'config', errno: 0, path: first!.path, detail: `${first!.message}${more}`, hint: err.hint ?? null }, { issues, cause: err });
}
