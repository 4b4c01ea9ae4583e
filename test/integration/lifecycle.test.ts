/**
 * Containers that outlive one call (issue 14): detached runs, ps, exec,
 * logs, stop, kill, rm and inspect from other processes, open() and create()
 * in the API, a killed creator and a killed monitor, unique names, and
 * nothing left behind.
 */
import { execFileSync, spawn as spawnProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { create, list, open, spawn } from '../../ts/index.js';
import { containerDir, stateRoot } from '../../ts/runtime/state.js';
import { throwawayUser, tsboxCgroups } from '../support/host.js';
import { alive, BIN, cli, descendants, eventually, REPO, runCommand, scratchDir, text, waitForOutput } from '../support/tsbox.js';

const rootfs = inject('rootfs');
const scratch = scratchDir('lifecycle');

const name = (what: string) => `t${process.pid}-${what}`;

describe('detached containers from the CLI', () => {
  it('run -d, then from other processes: ps lists it, exec sees its processes, logs, stop ends it, rm leaves nothing', async () => {
    const web = name('web');
    const before = tsboxCgroups();
    const started = await cli(['run', '-d', '--name', web, '--rootfs', rootfs, '--', 'sh', '-c', 'echo hello from web; exec sleep 100']);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const ps = await cli(['ps']);
    expect(ps.stdout).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+${web}\\s+sh -c echo hello.*Up\\s+\\d+$`, 'm'));
    const json = JSON.parse((await cli(['ps', '--format', 'json'])).stdout) as { id: string; status: string; pid: number }[];
    const mine = json.find((c) => c.id === id)!;
    expect(mine.status).toBe('running');
    expect(alive(mine.pid)).toBe(true);
    const exec = await cli(['exec', web, 'ps', '-o', 'pid,args']);
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toMatch(/^\s*1 tsbox-init/m);
    expect(exec.stdout).toMatch(/^\s*2 sleep 100/m);
    // -d leaves the command running after tsbox exec has gone (regression:
    // its monitor killed it with the exec's connection).
    const bg = await cli(['exec', '-d', web, 'sleep', '77']);
    expect(bg.code, bg.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    expect((await cli(['exec', web, 'ps', '-o', 'args'])).stdout).toMatch(/^sleep 77$/m);
    // By a unique prefix of the id, too, and with its status.
    const failing = await cli(['exec', id.slice(0, 10), 'sh', '-c', 'exit 4']);
    expect(failing.code).toBe(4);
    expect((await cli(['logs', web])).stdout).toBe('hello from web\n');
    const inspect = JSON.parse((await cli(['inspect', web])).stdout) as { id: string; name: string; status: string; ociVersion: string }[];
    expect(inspect[0]).toMatchObject({ id, name: web, status: 'running', ociVersion: '1.2.0' });
    const stop = await cli(['stop', '-t', '30', web]);
    expect(stop.code, stop.stderr).toBe(0);
    // sleep ignores nothing: SIGTERM (through init) ended it, not the SIGKILL after 30 s (143, below).
    expect(alive(mine.pid)).toBe(false);
    expect((await cli(['ps'])).stdout).not.toContain(id.slice(0, 12));
    expect((await cli(['ps', '-a'])).stdout).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+${web}.*Exited \\(143\\)`, 'm'));
    const rm = await cli(['rm', web]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(existsSync(containerDir(id))).toBe(false);
    // Its cgroup's marker goes with it, not at some later gc.
    expect(existsSync(join(stateRoot(), 'cgroups', `${id}.json`))).toBe(false);
    expect((await cli(['ps', '-a'])).stdout).not.toContain(id.slice(0, 12));
    expect(await eventually(() => tsboxCgroups().filter((c) => !before.includes(c)).length === 0)).toBe(true);
  });

  it('refuses a second container with the same name, and rm of a running one without -f', async () => {
    const dup = name('dup');
    const a = await cli(['run', '-d', '--name', dup, '--rootfs', rootfs, '--', 'sleep', '100']);
    expect(a.code, a.stderr).toBe(0);
    const b = await cli(['run', '-d', '--name', dup, '--rootfs', rootfs, '--', 'sleep', '100']);
    expect(b.code).toBe(125);
    expect(b.stderr).toMatch(new RegExp(`^tsbox: config\\(name\\): EEXIST — the name "${dup}" is in use by container [0-9a-f]{12} \\(running\\)`));
    const rm = await cli(['rm', dup]);
    expect(rm.code).toBe(125);
    expect(rm.stderr).toMatch(/the container is running; stop it first, or remove it with force/);
    expect((await cli(['rm', '-f', dup])).code).toBe(0);
    // One that fails does not stop the rest, as docker rm: it is reported, and the status is its.
    const other = `${dup}2`;
    expect((await cli(['run', '-d', '--name', other, '--rootfs', rootfs, '--', 'sleep', '100'])).code).toBe(0);
    const both = await cli(['rm', '-f', `${dup}-nosuch`, other]);
    expect(both.code).toBe(125);
    expect(both.stderr).toMatch(/^tsbox: state\(.*-nosuch\): ENOENT — no such container/);
    expect(both.stdout).toBe(`${other}\n`);
    expect((await cli(['inspect', dup])).stderr).toMatch(/^tsbox: state\(.*\): ENOENT — no such container/);
  });

  it('kill sends the signal it is given', async () => {
    const k = name('kill');
    await cli(['run', '-d', '--name', k, '--rootfs', rootfs, '--', 'sh', '-c', "trap 'echo got USR1; exit 7' USR1; while :; do sleep 0.1; done"]);
    await new Promise((r) => setTimeout(r, 300));
    expect((await cli(['kill', '-s', 'USR1', k])).code).toBe(0);
    expect((await open(k).wait()).exitCode).toBe(7);
    expect(open(k).logs()).toBe('got USR1\n');
    await open(k).remove();
  });

  // The log is in the state directory, /run, which is memory: a container
  // that writes without end must not fill it (it wrote 30 MiB into a 30 MiB log).
  it('a container that writes far more than --log-max-size leaves two files of at most that size, the end of its output in the newer, all of it in tsbox logs', async () => {
    const n = name('noisy');
    const started = await cli(['run', '-d', '--name', n, '--log-max-size', '64k', '--rootfs', rootfs, '--', 'sh', '-c', 'seq 1 200000; echo end >&2']);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    expect((await open(n).wait()).exitCode).toBe(0);
    const dir = containerDir(id);
    const newer = readFileSync(join(dir, 'container.log'), 'utf8');
    expect(Buffer.byteLength(newer)).toBeLessThanOrEqual(64 * 1024);
    expect(readdirSync(dir).filter((f) => f.startsWith('container.log')).sort()).toEqual(['container.log', 'container.log.1']);
    const older = readFileSync(join(dir, 'container.log.1'), 'utf8');
    expect(Buffer.byteLength(older)).toBeLessThanOrEqual(64 * 1024);
    // The two files are the last lines written, whole and in order, across the rotation.
    const lines = (older + newer).split('\n');
    expect(lines.slice(-3)).toEqual(['200000', 'end', '']);
    const numbers = lines.slice(0, -2).map(Number);
    expect(numbers.length).toBeGreaterThan(10_000);
    expect(numbers).toEqual(numbers.map((_, i) => 200_000 - numbers.length + 1 + i));
    expect((await cli(['logs', n])).stdout).toBe(older + newer);
    expect((await cli(['logs', '-f', n])).stdout).toBe(older + newer);
    expect(open(n).logs()).toBe(older + newer);
    await open(n).remove();
  });

  it('logs -f follows the output across its files: every line once, in order', async () => {
    const n = name('follow');
    // ~9 KB over ~2 s, through files of 2 KiB: rotated between the follower's reads.
    const script = 'seq 1 2000 | while read i; do echo $i; [ $((i % 100)) = 0 ] && sleep 0.1; done; true';
    const started = await cli(['run', '-d', '--name', n, '--log-max-size', '2k', '--rootfs', rootfs, '--', 'sh', '-c', script]);
    expect(started.code, started.stderr).toBe(0);
    const followed = await cli(['logs', '-f', n]);
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toBe(Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join(''));
    expect(readFileSync(join(containerDir(started.stdout.trim()), 'container.log.1')).length).toBeLessThanOrEqual(2048);
    await open(n).remove();
  });

  it('under the limit, everything written up to the exit is in the log, more than a pipe holds; 0 is no limit', async () => {
    const n = name('burst');
    // 168894 bytes, written as the container ends: more than the pipe's 64 KiB.
    const burst = await cli(['run', '-d', '--name', n, '--log-max-size', '1m', '--rootfs', rootfs, '--', 'sh', '-c', 'echo out; echo err >&2; seq 1 30000; printf last; exit 3']);
    expect(burst.code, burst.stderr).toBe(0);
    expect((await open(n).wait()).exitCode).toBe(3);
    const seq = (to: number) => Array.from({ length: to }, (_, i) => `${i + 1}\n`).join('');
    expect((await cli(['logs', n])).stdout).toBe(`out\nerr\n${seq(30000)}last`);
    await open(n).remove();
    // The API's option, 0: the whole output in one file.
    const c = await spawn(['seq', '1', '200000'], { rootfs, detach: true, name: name('unlimited'), logMaxSize: 0 });
    expect((await c.wait()).exitCode).toBe(0);
    expect(readFileSync(join(containerDir(c.id), 'container.log'), 'utf8')).toBe(seq(200000));
    expect(existsSync(join(containerDir(c.id), 'container.log.1'))).toBe(false);
    expect(open(c.id).logs()).toBe(seq(200000));
    await open(c.id).remove();
  });

  it('two containers under two --root directories run as host ids of their own (one id registry for the host), and both go without a trace', async () => {
    const before = tsboxCgroups();
    const roots = ['rootA', 'rootB'].map((r) => join(scratch, r));
    const ids: string[] = [];
    try {
      for (const root of roots) {
        const r = await cli(['--root', root, 'run', '-d', '--rootfs', rootfs, '--', 'sleep', '100']);
        expect(r.code, r.stderr).toBe(0);
        ids.push(r.stdout.trim());
      }
      const maps: number[][] = [];
      for (const [i, root] of roots.entries()) {
        const ps = JSON.parse((await cli(['--root', root, 'ps', '--format', 'json'])).stdout) as { id: string; pid: number }[];
        const pid = ps.find((c) => c.id === ids[i])!.pid;
        maps.push(readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/).map(Number));
      }
      // Container 0..65535, each onto a block of host ids the other does not touch.
      for (const m of maps) expect(m).toEqual([0, expect.any(Number), 65536]);
      const [a, b] = maps.map((m) => m[1]!);
      expect(Math.abs(a! - b!), `uid_map ${maps.map((m) => m.join(' ')).join(' | ')}`).toBeGreaterThanOrEqual(65536);
      // Their cgroup markers are the host's: any root's gc sees both.
      for (const id of ids) expect(existsSync(join('/run/tsbox/cgroups', `${id}.json`))).toBe(true);
    } finally {
      for (const [i, id] of ids.entries()) {
        const rm = await cli(['--root', roots[i]!, 'rm', '-f', id]);
        expect(rm.code, rm.stderr).toBe(0);
      }
    }
    for (const root of roots) expect(readdirSync(root).filter((n) => /^[0-9a-f]{64}$/.test(n))).toEqual([]);
    for (const id of ids) expect(existsSync(join('/run/tsbox/cgroups', `${id}.json`))).toBe(false);
    expect(await eventually(() => tsboxCgroups().filter((c) => !before.includes(c)).length === 0)).toBe(true);
  });

  it("a detached container's state records its monitor's start time: another process at the monitor's pid would not pass for it", async () => {
    const started = await cli(['run', '-d', '--rootfs', rootfs, '--', 'sleep', '100']);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    const dir = containerDir(id);
    try {
      const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { monitorPid: number; monitorStart: string };
      // Field 22 of /proc/PID/stat, after the command's name (which may hold spaces), written by the monitor itself.
      const stat = readFileSync(`/proc/${state.monitorPid}/stat`, 'utf8');
      expect(state.monitorStart).toBe(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      expect((JSON.parse((await cli(['inspect', id])).stdout) as { status: string }[])[0]!.status).toBe('running');
      // The same pid with another start time: taken for a process that reused it.
      writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...state, monitorStart: '1' }));
      expect((JSON.parse((await cli(['inspect', id])).stdout) as { status: string; error?: string }[])[0]).toMatchObject({ status: 'stopped', error: 'its monitor is gone' });
      writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    } finally {
      expect((await cli(['rm', '-f', id])).code).toBe(0);
    }
    expect(existsSync(dir)).toBe(false);
  });

  it('exec without -t from a terminal: the command gets pipes, so a process it leaves behind holds nothing of the terminal', async () => {
    const v = name('pty');
    const started = await cli(['run', '-d', '--name', v, '--rootfs', rootfs, '--', 'sleep', '100']);
    expect(started.code, started.stderr).toBe(0);
    try {
      const pid1 = (JSON.parse((await cli(['inspect', v])).stdout) as { pid: number }[])[0]!.pid;
      // script(1) gives the shell, and so tsbox, a terminal as stdin, stdout and stderr.
      const exec = `${process.execPath} ${BIN} exec ${v} sh -c 'echo to-stdout; echo to-stderr >&2; (exec sleep 78 &)'`;
      const r = await runCommand('script', ['-qec', `tty; ${exec}; echo "exec: $?"`, '/dev/null']);
      expect(r.code, r.stdout).toBe(0);
      const pty = /^(\/dev\/pts\/\d+)\r?$/m.exec(r.stdout)?.[1];
      expect(pty, r.stdout).toBeDefined();
      // Its output reached the terminal, and the exec returned with the command.
      expect(r.stdout).toMatch(/to-stdout\r?\n/);
      expect(r.stdout).toMatch(/to-stderr\r?\n/);
      expect(r.stdout).toMatch(/exec: 0/);
      const procs = descendants(pid1);
      const sleeper = procs.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8') === 'sleep\u000078\u0000');
      expect(sleeper, 'the background sleep runs on in the container').toBeDefined();
      const onPty = procs.flatMap((p) => {
        try {
          return readdirSync(`/proc/${p}/fd`).map((fd) => `${p}:${fd} -> ${readlinkSync(`/proc/${p}/fd/${fd}`)}`);
        } catch {
          return [];
        }
      });
      expect(onPty.filter((l) => l.endsWith(` -> ${pty}`) || l.includes(` -> ${pty} `))).toEqual([]);
    } finally {
      await cli(['rm', '-f', v]);
    }
  });

  it('logs -f: output that rotates the log twice between two of its reads is all there, every line once, in order', async () => {
    const n = name('burst-follow');
    // Bursts of 500 lines of 7 bytes (3500 bytes) through files of 2 KiB
    // (292 lines), 0.5 s apart: most fill the file held and the next one
    // within one of the follower's 200 ms polls, and none fills three.
    // The follower is running before the first: the container waits for USR1.
    const script = 'trap "go=1" USR1; echo ready; while [ -z "$go" ]; do sleep 0.1; done; n=100000; for k in 1 2 3 4 5 6 7 8; do seq $n $((n+499)); n=$((n+500)); sleep 0.5; done';
    const started = await cli(['run', '-d', '--name', n, '--log-max-size', '2k', '--rootfs', rootfs, '--', 'sh', '-c', script]);
    expect(started.code, started.stderr).toBe(0);
    const follower = spawnProcess(process.execPath, [BIN, 'logs', '-f', n], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const out = text(follower.stdout);
      const err = text(follower.stderr);
      await waitForOutput(follower, 'ready\n');
      expect((await cli(['kill', '-s', 'USR1', n])).code).toBe(0);
      const [stdout, stderr] = await Promise.all([out, err]);
      expect(stderr).toBe('');
      expect(stdout).toBe(`ready\n${Array.from({ length: 4000 }, (_, i) => `${100000 + i}\n`).join('')}`);
    } finally {
      follower.kill('SIGKILL');
      await cli(['rm', '-f', n]);
    }
  });
});

describe('open() and create() in the API', () => {
  it('a second process opens a detached container by name: state, exec, kill, wait', async () => {
    const api = name('api');
    const c = await spawn(['sleep', '100'], { rootfs, detach: true, name: api });
    const ref = open(api);
    expect(ref.id).toBe(c.id);
    expect(ref.state()).toMatchObject({ status: 'running', detached: true, name: api });
    expect(list().map((s) => s.id)).toContain(c.id);
    const e = await ref.exec(['hostname']);
    let out = '';
    e.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    expect((await e.wait()).exitCode).toBe(0);
    expect(out).toBe(`${c.id.slice(0, 12)}\n`);
    ref.kill('SIGKILL');
    expect(await ref.wait()).toMatchObject({ exitCode: 137, signal: 'SIGKILL' });
    expect(ref.state().status).toBe('stopped');
    await ref.remove();
    await c.wait().catch(() => {});
  });

  it('logs of a container that was not detached says tsbox kept none, instead of printing nothing', async () => {
    const n = name('attached');
    await using c = await spawn(['sleep', '30'], { rootfs, name: n });
    const r = await cli(['logs', n]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`tsbox: config(${n}): the container was not detached: its output went to the process that ran it, and tsbox kept none; run it with -d to have its output kept for tsbox logs\n`);
    expect(c.pid).toBeGreaterThan(0);
  });

  it('create() builds the sandbox and waits; start() runs the command', async () => {
    const c = await create(['sh', '-c', 'echo started; exit 3'], { rootfs });
    expect(open(c.id).state().status).toBe('created');
    expect(alive(c.pid)).toBe(true);
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await c.start();
    expect((await c.wait()).exitCode).toBe(3);
    expect(out).toBe('started\n');
    await expect(c.start()).rejects.toThrow(/started already/);
  });

  it('a container created by a process that has ended is started by another, with the command it was created with', async () => {
    const n = name('later');
    const out = join(scratch, 'later');
    await fs.mkdir(out, { recursive: true });
    // Container root is a host id of its range: it may write here.
    await fs.chmod(out, 0o777);
    // The creator: create, detached, and end.
    const script = join(scratch, 'create-later.mjs');
    await fs.writeFile(
      script,
      `const t = await import(${JSON.stringify(join(REPO, 'dist/tsbox.js'))});
await t.create(['sh', '-c', 'echo ran >> /out/log'], { rootfs: ${JSON.stringify(rootfs)}, detach: true, name: ${JSON.stringify(n)}, volumes: [${JSON.stringify(`${out}:/out`)}] });
`,
    );
    const created = spawnProcess(process.execPath, [script], { stdio: 'inherit' });
    expect(await new Promise((r) => created.once('exit', r))).toBe(0);
    const ref = open(n);
    try {
      expect(ref.state().status).toBe('created');
      expect(await fs.readFile(join(out, 'log'), 'utf8').catch(() => 'absent')).toBe('absent');
      await ref.start();
      expect(await ref.wait()).toMatchObject({ exitCode: 0 });
      expect(await fs.readFile(join(out, 'log'), 'utf8')).toBe('ran\n');
      // Once: a second start is refused and runs nothing.
      await expect(ref.start()).rejects.toThrow(/stopped|started already/);
      expect(await fs.readFile(join(out, 'log'), 'utf8')).toBe('ran\n');
    } finally {
      await ref.remove({ force: true });
    }
  });

  it("an exec'd process that leaves one in the background holding its output: wait() comes all the same, with all its output, to a slow reader too", async () => {
    await using c = await spawn(['sleep', '100'], { rootfs });
    // 1 MiB, more than the pipe and the streams hold, then a process that keeps the pipe.
    const e = await c.exec(['sh', '-c', 'head -c 1048576 /dev/zero; (exec sleep 79 &)'], { stdio: 'pipe' });
    let got = 0;
    // Read nothing for 3 s (longer than the quiet time) after the command has ended: its output still comes whole.
    await new Promise((r) => setTimeout(r, 3000));
    e.stdout!.on('data', (d: Buffer) => (got += d.length));
    const t0 = Date.now();
    expect((await e.wait()).exitCode).toBe(0);
    expect(got).toBe(1048576);
    // Not held for the sleep's 79 s: its quiet pipe is closed after 2 s.
    expect(Date.now() - t0).toBeLessThan(20_000);
    // It runs on; its pipe is ours no more.
    const ps = await c.exec(['ps', '-o', 'args'], { stdio: 'pipe' });
    const out = text(ps.stdout);
    await ps.wait();
    expect(await out).toMatch(/^sleep 79$/m);
  });

  it("an exec'd process that leaves one in the background writing on: wait() comes 2 s after its end, not when the writer stops", async () => {
    await using c = await spawn(['sleep', '100'], { rootfs });
    const e = await c.exec(['sh', '-c', 'echo fg; (while :; do echo bg; sleep 0.2; done) &'], { stdio: 'pipe' });
    const out = text(e.stdout);
    const ended = await Promise.race([e.wait().then((r) => r.exitCode), new Promise((r) => setTimeout(() => r('held'), 15_000))]);
    expect(ended).toBe(0);
    expect(await out).toMatch(/^fg\n/);
  });
});

describe('a detached container outlives its creator; its monitor does not outlive it', () => {
  /** Starts a Node process that makes a detached container, prints its id and stays. */
  async function creator(label: string): Promise<{ id: string; kill: () => void }> {
    const script = join(scratch, `${label}.mjs`);
    await fs.writeFile(
      script,
      `const t = await import(${JSON.stringify(join(REPO, 'dist/tsbox.js'))});\nconst c = await t.spawn(['sleep', '100'], { rootfs: ${JSON.stringify(rootfs)}, detach: true, name: ${JSON.stringify(name(label))} });\nconsole.log(c.id);\nsetInterval(() => {}, 1000);\n`,
    );
    const child = spawnProcess(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const id = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
    return { id, kill: () => child.kill('SIGKILL') };
  }

  it('a script that only spawns a detached container ends at once, as docker run -d does; the container runs on', async () => {
    const script = join(scratch, 'spawn-and-go.mjs');
    const det = name('go');
    await fs.writeFile(
      script,
      `const t = await import(${JSON.stringify(join(REPO, 'dist/tsbox.js'))});\nconst c = await t.spawn(['sleep', '100'], { rootfs: ${JSON.stringify(rootfs)}, detach: true, name: ${JSON.stringify(det)} });\nconsole.log(c.id);\n`,
    );
    const child = spawnProcess(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // It used to stay until the container's end, 100 s later.
    const ended = await eventually(() => child.exitCode !== null, 10_000);
    if (!ended) child.kill('SIGKILL');
    const ref = open(det);
    try {
      expect(ended).toBe(true);
      expect(child.exitCode).toBe(0);
      expect(out.trim()).toBe(ref.id);
      expect(ref.state().status).toBe('running');
      expect(alive(ref.state().pid)).toBe(true);
    } finally {
      await ref.remove({ force: true });
    }
  });

  it('kill -9 of the process that created it: it keeps running, and can still be stopped', async () => {
    const { id, kill } = await creator('orphan');
    kill();
    await new Promise((r) => setTimeout(r, 500));
    const ref = open(id);
    expect(ref.state().status).toBe('running');
    expect(alive(ref.state().pid)).toBe(true);
    await ref.stop(2);
    expect(ref.state().status).toBe('stopped');
    await ref.remove();
  });

  it('kill -9 of its monitor: the container dies, and gc leaves nothing', async () => {
    const before = tsboxCgroups();
    const { id, kill } = await creator('monitor');
    kill();
    const s = open(id).state();
    process.kill(s.monitorPid, 'SIGKILL');
    expect(await eventually(() => !alive(s.pid), 2_000)).toBe(true);
    expect(open(id).state().status).toBe('stopped');
    // Its id range's lock file, which no process holds now (another test's
    // allocation may prune it first: gc must leave none either way).
    const locks = () => readdirSync(join(stateRoot(), 'ids')).filter((n) => n.endsWith('.lock') && readFileSync(join(stateRoot(), 'ids', n), 'utf8').startsWith(id));
    const gc = await cli(['gc']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(existsSync(containerDir(id))).toBe(false);
    expect(tsboxCgroups().filter((c) => !before.includes(c) && c.includes(id))).toEqual([]);
    expect(locks()).toEqual([]);
  });
});

describe('rootless', () => {
  const user = throwawayUser(`tsbox-lc-${process.pid}`);
  // The runner's environment is root's: an ordinary user's state goes where its own would.
  const env = () => ({ ...process.env, XDG_RUNTIME_DIR: '' });

  it('an ordinary user creates, execs into, stops and removes a container (exec used to fail with EPERM)', async () => {
    const uid = user.uid();
    const rl = name('rootless');
    const as = (args: string[]) => cli(args, { uid, gid: uid, env: env() });
    const run = await as(['run', '-d', '--name', rl, '--rootfs', rootfs, '--', 'sleep', '100']);
    expect(run.code, run.stderr).toBe(0);
    const exec = await as(['exec', rl, 'sh', '-c', 'id -u; ps -o pid,args']);
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toMatch(/^0\n/);
    expect(exec.stdout).toMatch(/^\s*2 sleep 100/m);
    // Seen from the host, the exec'd process is the user's, never root.
    expect((await as(['stop', '-t', '2', rl])).code).toBe(0);
    expect((await as(['rm', rl])).code).toBe(0);
    expect((await as(['ps', '-a'])).stdout).not.toContain(rl);
    // Its state root is in the shared temporary directory: nothing of it stays.
    expect(existsSync(join(tmpdir(), `tsbox-state-${uid}`))).toBe(false);
  });

  it('refuses a state directory another user made first in the temporary directory (it would read and replace the state)', async () => {
    const uid = user.uid();
    // This user has no XDG_RUNTIME_DIR and no /run/user/<uid>: its state goes to tsbox-state-<uid> there.
    const taken = join(tmpdir(), `tsbox-state-${uid}`);
    await fs.rm(taken, { recursive: true, force: true });
    await fs.mkdir(taken);
    await fs.chmod(taken, 0o777);
    try {
      const r = await cli(['run', '--rootfs', rootfs, '--', 'true'], { uid, gid: uid, env: env() });
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(`state(${taken}): EPERM — the state directory belongs to uid 0, not to this user (${uid})`);
      expect(readdirSync(taken)).toEqual([]);
    } finally {
      await fs.rm(taken, { recursive: true, force: true });
    }
  });

  it('exec into an attached container through the API, as the user', async () => {
    const uid = user.uid();
    const script = join(scratch, 'rootless-exec.mjs');
    await fs.writeFile(
      script,
      `const t = await import(${JSON.stringify(join(REPO, 'dist/tsbox.js'))});\nconst c = await t.spawn(['sleep', '30'], { rootfs: ${JSON.stringify(rootfs)} });\nconst e = await c.exec(['id', '-u']);\nlet out = '';\ne.stdout.on('data', (d) => (out += d));\nconst r = await e.wait();\nconsole.log(JSON.stringify({ out, code: r.exitCode }));\nc.kill('SIGKILL');\nawait c.wait().catch(() => {});\n`,
    );
    await fs.chmod(script, 0o644);
    const out = execFileSync(process.execPath, [script], { uid, gid: uid, env: env(), encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ out: '0\n', code: 0 });
  });
});

describe('nothing left behind', () => {
  it('no state directory of this suite remains', () => {
    const root = containerDir('x').slice(0, -2);
    const left = (existsSync(root) ? readdirSync(root) : []).filter((n) => /^[0-9a-f]{64}$/.test(n)).filter((n) => {
      try {
        return (JSON.parse(readFileSync(join(root, n, 'state.json'), 'utf8')) as { name: string | null }).name?.startsWith(`t${process.pid}-`);
      } catch {
        return false;
      }
    });
    expect(left).toEqual([]);
  });
});

