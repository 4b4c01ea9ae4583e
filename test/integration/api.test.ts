/**
 * The programmatic API (issue 7), as a Node service would use it: run() and
 * spawn(), every option visible from inside, exec into a running container,
 * timeouts and aborts that leave nothing, tty, streams with backpressure, and
 * no leaked descriptors across hundreds of containers.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';

import { describe, expect, inject, it } from 'vitest';

import { AbortError, run, spawn, TsboxError, type RunOptions } from '../../ts/index.js';
import { loadConfig } from '../../ts/config/file.js';
import { loadNative } from '../../ts/native.js';
import { alive, BIN, descendants, eventually, runCommand, text, type ProbeInfo, scratchDir } from '../support/tsbox.js';

const rootfs = inject('rootfs');
const scratch = scratchDir('api');

const fdCount = () => readdirSync('/proc/self/fd').length;

async function probe(options: RunOptions = {}): Promise<ProbeInfo & { euid: number; groups: number[] }> {
  const r = await run(['tsbox-probe', 'info'], { rootfs, ...options });
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ProbeInfo & { euid: number; groups: number[] };
}

describe('run()', () => {
  it('captures stdout and stderr, feeds input, and returns the exit code and usage', async () => {
    const r = await run(['sh', '-c', 'read x; echo "out:$x"; echo err >&2; exit 3'], { rootfs, input: 'hello\n' });
    expect(r).toMatchObject({ exitCode: 3, signal: null, stdout: 'out:hello\n', stderr: 'err\n', timedOut: false, truncated: false });
    expect(r.usage.maxRssKiB).toBeGreaterThan(0);
    expect(r.id).toMatch(/^[0-9a-f]{64}$/);
  });

  it('returns Buffers with encoding: buffer, and caps the output at maxBuffer', async () => {
    const r = await run(['sh', '-c', 'head -c 5000 /dev/zero'], { rootfs, encoding: 'buffer', maxBuffer: 1000 });
    expect(Buffer.isBuffer(r.stdout)).toBe(true);
    expect(r.stdout.length).toBe(1000);
    expect(r.truncated).toBe(true);
  });

  it('kills on timeout and says timedOut, leaving no process', async () => {
    const r = await run(['sh', '-c', 'echo $$; sleep 30'], { rootfs, timeout: 500 });
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.exitCode).toBe(137);
  });

  it('kills on abort and rejects with an AbortError, leaving no process', async () => {
    const ac = new AbortController();
    const c = await spawn(['sleep', '30'], { rootfs, signal: ac.signal });
    const pid = c.pid;
    ac.abort();
    await expect(c.wait()).rejects.toBeInstanceOf(AbortError);
    expect(await eventually(() => !alive(pid))).toBe(true);
    const pre = new AbortController();
    pre.abort();
    await expect(run(['true'], { rootfs, signal: pre.signal })).rejects.toBeInstanceOf(AbortError);
  });

  it('rejects a command that cannot start with a TsboxError carrying the step and exit code', async () => {
    const err = await run(['no-such-command'], { rootfs }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TsboxError);
    expect(err).toMatchObject({ step: 'exec', errno: 2, exitCode: 127, path: 'no-such-command' });
  });

  it('rejects a limit the kernel refuses once the helper is running, and leaves no cgroup, marker or helper', async () => {
    // On v1 and hybrid the cgroup is made while tsbox-init clones: this
    // failure comes after the helper and the container process exist.
    const err = await run(['true'], { rootfs, cpusetCpus: '1000' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TsboxError);
    const e = err as TsboxError;
    expect(e).toMatchObject({ step: 'cgroup', exitCode: 125 });
    expect(e.path).toMatch(/\/tsbox\/[0-9a-f]{64}\/cpuset\.cpus$/);
    const id = /\/tsbox\/([0-9a-f]{64})\//.exec(e.path!)![1]!;
    const hierarchies = readdirSync('/sys/fs/cgroup');
    const left = hierarchies.flatMap((h) => {
      const out: string[] = [];
      const walk = (dir: string, depth: number) => {
        for (const d of readdirSync(dir, { withFileTypes: true })) {
          if (!d.isDirectory()) continue;
          if (d.name === id) out.push(join(dir, d.name));
          else if (depth < 6) walk(join(dir, d.name), depth + 1);
        }
      };
      try {
        walk(join('/sys/fs/cgroup', h), 0);
      } catch {
        // Not a directory we may read.
      }
      return out;
    });
    expect(left).toEqual([]);
    expect(await fs.access(`/run/tsbox/cgroups/${id}.json`).then(() => true, () => false)).toBe(false);
    // No helper left as this process's child, not even a zombie.
    const children = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        return stat.includes('(tsbox-init)') && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
      } catch {
        return false;
      }
    });
    expect(children).toEqual([]);
  });

  it('a tsbox-init that cannot be started: a spawn_helper TsboxError, and no descriptor, id range, cgroup or state is left', async () => {
    // As a damaged install: the helper's path names a file that is no
    // program. Its spawn runs on the addon's thread while the launch makes
    // the id range (a lock held by a descriptor), the state and, on v2, the
    // cgroup; the failure, learnt before the plan goes out, undoes them.
    const native = loadNative();
    const good = native.initPath;
    const bad = join(scratch, 'not-tsbox-init');
    await fs.writeFile(bad, 'not a program\n', { mode: 0o755 });
    const state = () => readdirSync('/run/tsbox').filter((n) => /^[0-9a-f]{64}$/.test(n));
    // The once-per-process collection and first-use descriptors, out of the
    // count; its release (a timer after the result) done.
    await run(['true'], { rootfs });
    await new Promise((r) => setTimeout(r, 50));
    const fds = fdCount();
    const before = state();
    native.initPath = bad;
    let err: unknown;
    try {
      err = await run(['true'], { rootfs }).catch((e: unknown) => e);
    } finally {
      native.initPath = good;
    }
    expect(err).toBeInstanceOf(TsboxError);
    expect(err).toMatchObject({ step: 'spawn_helper', path: bad, exitCode: 125 });
    expect((err as TsboxError).toLine()).toBe(`spawn_helper(${bad}): start ${bad}: Exec format error (ENOEXEC); reinstall tsbox, or point TSBOX_NATIVE_DIR at a build holding tsbox-init`);
    // The undo runs after the failure is thrown: its descriptors (the id range's lock, the pipes, the channel) close with it.
    expect(await eventually(() => fdCount() === fds)).toBe(true);
    expect(state().filter((n) => !before.includes(n))).toEqual([]);
    // And the next launch works.
    expect((await run(['true'], { rootfs })).exitCode).toBe(0);
  });

  it('rejects bad options before anything is created, with JSON paths', async () => {
    const err = await run(['true'], { rootfs, memory: 'lots', hostname: 'no good' } as unknown as RunOptions).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TsboxError);
    expect((err as TsboxError).issues.map((i) => i.path)).toEqual(expect.arrayContaining(['memory', 'hostname']));
  });
});

describe('every option, seen from inside', () => {
  it('hostname, env, cwd, user and groups', async () => {
    const i = await probe({ hostname: 'api-box', env: { A: '1' }, cwd: '/tmp', user: 'tester', groupAdd: ['65534'] });
    expect(i.hostname).toBe('api-box');
    expect(i.env.A).toBe('1');
    expect(i.env.HOME).toBe('/home/tester');
    expect(i.cwd).toBe('/tmp');
    expect([i.uid, i.gid]).toEqual([1000, 1000]);
    expect(i.groups).toContain(65534);
  });

  it('capabilities, no_new_privs and seccomp', async () => {
    const i = await probe({ capDrop: ['ALL'], capAdd: ['KILL'], noNewPrivileges: false, seccomp: 'unconfined' });
    expect(i.status.CapEff).toBe((1n << 5n).toString(16).padStart(16, '0'));
    expect(i.status.NoNewPrivs).toBe(0);
    expect(i.status.Seccomp).toBe(0);
  });

  it('volumes, tmpfs, readOnly and init', async () => {
    const vol = await fs.mkdtemp(join(scratch, 'vol-'));
    // A read-only root has no room for new mount points: use existing ones.
    const i = await probe({ volumes: [{ source: vol, target: '/home', readonly: true }], tmpfs: ['/var:size=1m'], readOnly: true, init: false });
    const m = (p: string) => i.mounts.find((x) => x.mountPoint === p);
    expect(m('/home')!.options.split(',')).toContain('ro');
    expect(m('/var')!.fsType).toBe('tmpfs');
    expect(m('/')!.options.split(',')).toContain('ro');
    expect(i.pid).toBe(1);
  });

  it('a config file gives the same options, with paths relative to it', async () => {
    const file = join(scratch, 'box.json');
    await fs.writeFile(file, JSON.stringify({ rootfs, hostname: 'from-file', env: { B: '2' }, command: ['tsbox-probe', 'info'] }));
    const cfg = loadConfig(file);
    const r = await run(cfg.command!, cfg.options);
    const i = JSON.parse(r.stdout) as ProbeInfo;
    expect([i.hostname, i.env.B]).toEqual(['from-file', '2']);
    await fs.writeFile(file, JSON.stringify({ rootfs, hostname: 'no good' }));
    expect(() => loadConfig(file)).toThrow(/box\.json: hostname/);
  });
});

describe('spawn() and exec()', () => {
  it('exec joins the running container: same pid namespace, user, hostname', async () => {
    await using c = await spawn(['sleep', '30'], { rootfs, hostname: 'shared' });
    const e = await c.exec(['sh', '-c', 'ps -o pid,args; hostname']);
    const output = text(e.stdout);
    expect((await e.wait()).exitCode).toBe(0);
    const out = await output;
    expect(out).toMatch(/^\s*1 tsbox-init/m);
    expect(out).toMatch(/^\s*2 sleep 30/m);
    expect(out).toContain('shared');
    const as = await c.exec(['id', '-u'], { user: 'tester' });
    const uid = text(as.stdout);
    await as.wait();
    expect((await uid).trim()).toBe('1000');
  });

  it("emits 'exit', forwards kill(), and cleans up with await using", async () => {
    let pid = 0;
    {
      await using c = await spawn(['tsbox-probe', 'signals', '30'], { rootfs });
      pid = c.pid;
      const exited = new Promise((r) => c.once('exit', r));
      await new Promise<void>((r) => c.stdout!.once('data', () => r()));
      c.kill('SIGTERM');
      expect(await exited).toMatchObject({ exitCode: 115 });
    }
    {
      await using c = await spawn(['sleep', '30'], { rootfs });
      pid = c.pid;
    }
    expect(alive(pid)).toBe(false);
  });

  it('gives a tty: the command sees a terminal of the given size, and resize() changes it', async () => {
    const c = await spawn(['sh', '-c', 'tty; stty size; read x; stty size'], { rootfs, tty: true, ttySize: { cols: 100, rows: 30 } });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(() => out.includes('30 100'));
    c.resize(120, 40);
    c.stdin!.write('go\r');
    expect((await c.wait()).exitCode).toBe(0);
    expect(out.replace(/\r/g, '')).toMatch(/\/dev\/pts\/0\n30 100\n(go\n)?40 120\n/);
    expect(c.stderr).toBeNull();
  });

  it('a tty command that ends at once still hands over its terminal and its output', async () => {
    // Regression: the monitor saw PID 1's exit before it had relayed the
    // pty, and dropped it (a few runs in a hundred under load).
    for (let i = 0; i < 40; i++) {
      const c = await spawn(['echo', 'quick'], { rootfs, tty: true });
      expect(c.stdout, `run ${i}`).not.toBeNull();
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      expect((await c.wait()).exitCode).toBe(0);
      expect(out.replace(/\r/g, '')).toBe('quick\n');
    }
  });

  it('sets TERM with a tty as Docker does (the caller\'s, else xterm; env wins), and exec() takes tty and resize() too', async () => {
    const term = async (opts: RunOptions) => {
      const c = await spawn(['sh', '-c', 'echo "$TERM"'], { rootfs, tty: true, ...opts });
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await c.wait();
      return out.trim();
    };
    const saved = process.env.TERM;
    try {
      process.env.TERM = 'screen-256color';
      expect(await term({})).toBe('screen-256color');
      delete process.env.TERM;
      expect(await term({})).toBe('xterm');
      expect(await term({ env: { TERM: 'vt100' } })).toBe('vt100');
    } finally {
      if (saved === undefined) delete process.env.TERM;
      else process.env.TERM = saved;
    }
    // Without a tty there is no TERM to set.
    expect((await run(['sh', '-c', 'echo "[$TERM]"'], { rootfs })).stdout).toBe('[]\n');
    await using c = await spawn(['sleep', '30'], { rootfs });
    const e = await c.exec(['sh', '-c', 'tty; stty size; read x; stty size'], { tty: true, ttySize: { cols: 90, rows: 20 } });
    let out = '';
    e.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(() => out.includes('20 90'));
    e.resize(132, 50);
    e.stdin!.write('go\r');
    expect((await e.wait()).exitCode).toBe(0);
    expect(out.replace(/\r/g, '')).toMatch(/\/dev\/pts\/\d+\n20 90\n(go\n)?50 132\n/);
  });

  it("emits 'spawn' once spawn() has resolved, and 'error' to a listener when the container's monitor dies, as ChildProcess does (issue 19)", async () => {
    const c = await spawn(['sleep', '30'], { rootfs });
    await new Promise<void>((resolve) => c.once('spawn', resolve));
    const errored = new Promise<unknown>((resolve) => c.once('error', resolve));
    // The monitor is the helper, this process's child: its death is a failure, not an exit.
    const monitor = descendants(process.pid).find((pid) => pid !== c.pid && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'tsbox-init');
    expect(monitor).toBeDefined();
    process.kill(monitor!, 'SIGKILL');
    expect(await errored).toBeInstanceOf(TsboxError);
    await expect(c.wait()).rejects.toBeInstanceOf(TsboxError);
  });

  it('unref() lets the program end while its container runs (which, attached, is killed then); ref() takes it back; events still come (issue 19)', async () => {
    const api = pathToFileURL(join(dirname(BIN), '../dist/index.js')).href;
    const node = (script: string) =>
      runCommand(process.execPath, ['--input-type=module', '-e', `import { spawn } from ${JSON.stringify(api)}; const rootfs = ${JSON.stringify(rootfs)};\n${script}`], { killAfterMs: 25_000 });
    // Nothing else to do: Node ends at once, long before `sleep 30` would.
    const ended = await node("const c = await spawn(['sleep', '30'], { rootfs }); console.log(c.pid); c.unref();");
    expect(ended.code, ended.stderr).toBe(0);
    const pid = Number(ended.stdout.trim());
    expect(pid).toBeGreaterThan(0);
    expect(await eventually(() => !alive(pid))).toBe(true);
    // While Node runs for something else, 'exit', wait() and the output still
    // come; after ref(), the container alone keeps Node up to its end.
    const kept = await node(
      [
        "const c = await spawn(['sh', '-c', 'sleep 0.3; echo hi'], { rootfs }); c.unref();",
        "c.on('exit', (r) => console.log('exit', r.exitCode)); let out = ''; c.stdout.on('data', (d) => (out += d));",
        'const other = setTimeout(() => {}, 20_000);',
        "const r = await c.wait(); console.log('waited', r.exitCode, JSON.stringify(out)); clearTimeout(other);",
        "const d = await spawn(['sh', '-c', 'sleep 0.3; exit 3'], { rootfs }); d.unref(); d.ref(); console.log('ref', (await d.wait()).exitCode);",
      ].join('\n'),
    );
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toBe('exit 0\nwaited 0 "hi\\n"\nref 3\n');
  });

  it('cancelRecv() right after recv(), before its future first ran, still ends that wait (the race that let unref() keep Node up)', async () => {
    const { binding } = loadNative();
    for (let i = 0; i < 200; i++) {
      const ch = new binding.Channel();
      try {
        const pending = ch.recv();
        ch.cancelRecv();
        await expect(pending).rejects.toThrow('cancelled');
        // Only that wait: the next recv sees what comes.
        const next = ch.recv();
        ch.close();
        await expect(next).resolves.toBeNull();
      } finally {
        ch.close();
      }
    }
  });

  it('close() ends a pending recv() or recvWeak() with null, and closes its socket with or without one waiting', async () => {
    const { binding } = loadNative();
    // The addon's async runtime, started by the first channel, has its own descriptors.
    const first = new binding.Channel();
    first.close();
    first.closeChild();
    const before = fdCount();
    // Nothing waiting: both ends go (the helper's end too, not handed
    // over), and a recv() after it is null.
    const idle = new binding.Channel();
    expect(idle.childFd).toBeGreaterThanOrEqual(0);
    idle.close();
    expect(idle.childFd).toBe(-1);
    expect(await eventually(() => fdCount() === before)).toBe(true);
    await expect(idle.recv()).resolves.toBeNull();
    // A recv() and a recvWeak() waiting: each ends with null.
    const busy = new binding.Channel();
    const pending = busy.recv();
    const weak = new Promise<string | null>((resolve, reject) => busy.recvWeak((err, msg) => (err ? reject(err) : resolve(msg))));
    busy.close();
    await expect(pending).resolves.toBeNull();
    await expect(weak).resolves.toBeNull();
    expect(await eventually(() => fdCount() === before)).toBe(true);
  });

  it("the container's monitor gives up the caller's stdio once the container is cloned (its trace, when on, still goes there)", async () => {
    // Its pipes then end as the container's last process exits, not after
    // the monitor has reaped it and sent `exited`.
    const monitorOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    const fds = (pid: number) => [0, 1, 2].map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));
    const quiet = await spawn(['sleep', '30'], { rootfs });
    const traced = await spawn(['sleep', '30'], { rootfs, trace: true });
    const stderr = text(traced.stderr);
    try {
      expect(fds(monitorOf(quiet.pid))).toEqual(['/dev/null', '/dev/null', '/dev/null']);
      expect(fds(quiet.pid).every((l) => l.startsWith('pipe:'))).toBe(true);
      expect(fds(monitorOf(traced.pid))[2]).toMatch(/^pipe:/);
    } finally {
      quiet.kill('SIGKILL');
      traced.kill('SIGKILL');
      await Promise.allSettled([quiet.wait(), traced.wait()]);
    }
    expect(await stderr).toContain('monitor: PID 1 has exited');
    // The output still arrives whole, up to the last byte the container
    // writes as it ends, and stdin that the command never reads is no error.
    const r = await run(['sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" x; echo done >&2'], { rootfs, input: 'unread' });
    expect([r.exitCode, r.stdout.length, r.stdout.slice(-3), r.stderr]).toEqual([0, 3_000_000, 'xxx', 'done\n']);
  });

  it("stdin is a pipe to the container alone: once it closed its end, a write fails with EPIPE, as a ChildProcess's does", async () => {
    // Without init the command is the only process that holds it (tsbox's
    // init keeps its own copy, as the command's parent).
    const c = await spawn(['sh', '-c', 'exec 0<&-; echo closed; sleep 30'], { rootfs, init: false });
    try {
      await new Promise<void>((resolve) => c.stdout!.once('data', () => resolve()));
      const err = await new Promise<NodeJS.ErrnoException | null | undefined>((resolve) => c.stdin!.write('x', resolve));
      expect(err?.code).toBe('EPIPE');
    } finally {
      c.kill('SIGKILL');
      await c.wait().catch(() => {});
    }
  });

  it('has exitCode and signalCode as ChildProcess does, and errors carry a code to switch on (issue 19)', async () => {
    const c = await spawn(['sh', '-c', 'exit 3'], { rootfs });
    expect([c.exitCode, c.signalCode]).toEqual([null, null]);
    await c.wait();
    expect([c.exitCode, c.signalCode]).toEqual([3, null]);
    const k = await spawn(['sleep', '30'], { rootfs });
    k.kill('SIGKILL');
    await k.wait();
    expect([k.exitCode, k.signalCode]).toEqual([137, 'SIGKILL']);
    const err = await run(['no-such-command'], { rootfs }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TSBOX_EXEC_ENOENT', exitCode: 127 });
  });

  it('wait() resolves after the output of a stream being read has been delivered', async () => {
    // Regression: a container that ended before spawn()'s caller went on
    // could resolve wait() before the caller's reader was attached (1 run in 75 here).
    for (let i = 0; i < 40; i++) {
      const c = await spawn(['sh', '-c', 'echo hello; head -c 50000 /dev/zero'], { rootfs });
      let n = 0;
      c.stdout!.on('data', (d: Buffer) => (n += d.length));
      expect((await c.wait()).exitCode).toBe(0);
      expect(n).toBe(6 + 50000);
    }
  });

  it('wait() resolves once the container ends, even when nobody reads its output', async () => {
    // 100 kB: more than the pipe and our stream buffer hold, less than would block the writer.
    const c = await spawn(['sh', '-c', 'head -c 100000 /dev/zero; echo done >&2'], { rootfs });
    const r = await c.wait();
    expect(r.exitCode).toBe(0);
    // The output is still there for a late reader.
    let n = 0;
    c.stdout!.on('data', (d: Buffer) => (n += d.length));
    await new Promise((res) => c.stdout!.once('end', res));
    expect(n).toBe(100000);
  });

  it('streams 100 MB through stdout intact, with backpressure and bounded memory', async () => {
    const pattern = '0123456789abcdef\n';
    const total = 100 * 1024 * 1024;
    const c = await spawn(['sh', '-c', `yes 0123456789abcdef | head -c ${total}`], { rootfs });
    const hash = createHash('sha256');
    let received = 0;
    let maxRss = 0;
    const rss0 = process.memoryUsage().rss;
    // A slow consumer: one chunk at a time, with a pause.
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        received += chunk.length;
        maxRss = Math.max(maxRss, process.memoryUsage().rss);
        setImmediate(done);
      },
    });
    c.stdout!.pipe(sink);
    await Promise.all([c.wait(), new Promise((r) => sink.on('finish', r))]);
    const expected = createHash('sha256');
    const block = pattern.repeat(65536);
    for (let n = 0; n < total; n += block.length) expected.update(block.slice(0, Math.min(block.length, total - n)));
    expect(received).toBe(total);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    // The data went through, not into memory.
    expect(maxRss - rss0).toBeLessThan(64 * 1024 * 1024);
  });
});

describe('no leaks across many containers', () => {
  it('200 sequential runs and 8 concurrent ones leave the fd count unchanged', async () => {
    // Warm-up: the first run starts the addon's event-loop integration.
    await run(['true'], { rootfs });
    // What it held (its id range's lock) goes back right after its result.
    await new Promise((r) => setTimeout(r, 100));
    const before = fdCount();
    const listeners = process.listenerCount('SIGINT') + process.listenerCount('exit');
    // Launches move this process into the cgroup it is in (to start a grace
    // period early on v1): it must stay exactly where it was.
    const ownCgroups = readFileSync('/proc/self/cgroup', 'utf8');
    for (let i = 0; i < 200; i++) {
      const r = await run(['true'], { rootfs });
      expect(r.exitCode).toBe(0);
    }
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => run(['sh', '-c', `echo ${i}`], { rootfs })));
    expect(results.map((r) => `${r.stdout.trim()}|${r.exitCode}|${r.stderr.trim()}`)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7'].map((n) => `${n}|0|`));
    expect(await eventually(() => fdCount() === before, 2_000)).toBe(true);
    expect(process.listenerCount('SIGINT') + process.listenerCount('exit')).toBe(listeners);
    expect(readFileSync('/proc/self/cgroup', 'utf8')).toBe(ownCgroups);
  }, 120_000);
});
