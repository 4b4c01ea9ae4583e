/**
 * The warm pool (issue 16), its behaviour rather than its speed: a pooled
 * container is isolated exactly as a cold one, each sandbox is used once,
 * the pool refills after its sandboxes die, and close() (and 1000 runs)
 * leave nothing behind. Speed is bench/'s.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { AbortError, createPool, run, TsboxError, type Pool, type PoolOptions } from '../../ts/index.js';
import { stateRoot } from '../../ts/state-root.js';
import { tsboxCgroups } from '../support/host.js';
import { alive, cli, descendants, eventually, REPO, runCommand, text, type ProbeInfo } from '../support/tsbox.js';

const rootfs = inject('rootfs');

const fdCount = () => readdirSync('/proc/self/fd').length;
/** The host's mounts, but the network namespaces other tests pin under /run/netns meanwhile. */
const mountCount = () =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => !l.includes(' /run/netns')).length;

/** The containers this process has state for (ready sandboxes included): their ids. */
function ownContainers(): string[] {
  const root = stateRoot();
  const ids: string[] = [];
  for (const name of existsSync(root) ? readdirSync(root) : []) {
    try {
      const s = JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as { id: string; callerPid: number };
      if (s.callerPid === process.pid) ids.push(s.id);
    } catch {
      // Not a container's directory, or one being removed.
    }
  }
  return ids;
}

/** The tsbox-init processes below this one (a pool's helpers and their containers' PID 1s). */
function ownHelpers(): number[] {
  return descendants(process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'tsbox-init' && alive(pid);
    } catch {
      return false;
    }
  });
}

/** The monitors among them: this process's own children. */
function monitors(): number[] {
  return ownHelpers().filter((pid) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[3] === String(process.pid));
}

/** What a container of `ids` could leave: its cgroups, its state, its processes. */
function leftovers(ids: string[]): string[] {
  const cgroups = tsboxCgroups().filter((dir) => ids.some((id) => dir.endsWith(`/${id}`)));
  const states = ids.filter((id) => existsSync(join(stateRoot(), id)));
  return [...cgroups, ...states.map((id) => `state ${id}`), ...ownHelpers().map((pid) => `process ${pid}`)];
}

async function ready(pool: Pool, n: number): Promise<void> {
  expect(await eventually(() => pool.stats().ready >= n, 15_000), JSON.stringify(pool.stats())).toBe(true);
}

async function withPool<T>(options: PoolOptions, fn: (pool: Pool) => Promise<T>): Promise<T> {
  await using pool = createPool({ rootfs, ...options });
  return await fn(pool);
}

/** The inode of this process's namespace `ns` (the host's: the test runs in them). */
function hostNamespace(ns: string): number {
  return statSync(`/proc/self/ns/${ns}`).ino;
}

/** The probe's view, with what differs by design between any two containers (ids, inodes, ranges) taken out. */
function shape(p: ProbeInfo): unknown {
  return {
    uid: p.uid,
    gid: p.gid,
    // Each container has its own range: its size, and container root at its start.
    uidMap: p.uidMap.map(([inside, , size]) => [inside, size]),
    gidMap: p.gidMap.map(([inside, , size]) => [inside, size]),
    setgroups: p.setgroups,
    namespaces: Object.keys(p.ns).sort(),
    status: p.status,
    mounts: p.mounts.map((m) => `${m.mountPoint} ${m.fsType} ${m.options}`),
    cgroup: p.cgroup.map((l) => l.replace(/[0-9a-f]{64}/g, 'ID')),
    cwd: p.cwd,
    interfaces: p.interfaces,
    interfacesUp: p.interfacesUp,
    errors: p.errors,
  };
}

describe('a pool', () => {
  it('runs a command with the same result run() gives, and the call’s argv, env, cwd and user', async () => {
    await withPool({ size: 1, env: { FROM: 'pool', BOTH: 'pool' } }, async (pool) => {
      await ready(pool, 1);
      const r = await pool.run(['sh', '-c', 'read x; echo "$x $FROM $BOTH $CALL"; pwd; id -u; echo err >&2; exit 3'], {
        input: 'in\n',
        env: { BOTH: 'call', CALL: 'yes' },
        cwd: '/tmp',
        user: '1000:1000',
      });
      expect(r).toMatchObject({ exitCode: 3, signal: null, stdout: 'in pool call yes\n/tmp\n1000\n', stderr: 'err\n', timedOut: false, truncated: false, oomKilled: false });
      expect(r.id).toMatch(/^[0-9a-f]{64}$/);
      expect(r.usage.maxRssKiB).toBeGreaterThan(0);
      expect(r.limits).toMatchObject({ pidsLimit: expect.any(Number) });
      expect(pool.stats()).toMatchObject({ handedOver: 1, failed: 0 });
    });
  });

  it('builds a call’s process once per set of options, and lets nothing of one call’s env, cwd, user or command reach another’s', async () => {
    await withPool({ size: 4, env: { FROM: 'pool' } }, async (pool) => {
      await ready(pool, 4);
      const show = 'echo "$FROM|${A-unset}|$HOSTNAME|$(hostname)"; pwd; id -u';
      const given = { env: { A: '1' }, cwd: '/tmp', user: '1000:1000' };
      // Options, none, the same options again with another command, none again:
      // the second and third of a kind reuse what the first built.
      const a = await pool.run(['sh', '-c', show], given);
      const b = await pool.run(['sh', '-c', show]);
      const c = await pool.run(['sh', '-c', `echo other; ${show}`], { env: { A: '1' }, cwd: '/tmp', user: '1000:1000' });
      const d = await pool.run(['sh', '-c', show]);
      const host = (r: { id: string }) => r.id.slice(0, 12);
      const lines = (r: { stdout: string }) => r.stdout.trim().split('\n');
      for (const r of [a, b, c, d]) expect(r.exitCode, r.stderr).toBe(0);
      expect(lines(a)).toEqual([`pool|1|${host(a)}|${host(a)}`, '/tmp', '1000']);
      expect(lines(b)).toEqual([`pool|unset|${host(b)}|${host(b)}`, '/', '0']);
      expect(lines(c)).toEqual(['other', `pool|1|${host(c)}|${host(c)}`, '/tmp', '1000']);
      expect(lines(d)).toEqual([`pool|unset|${host(d)}|${host(d)}`, '/', '0']);
      expect(new Set([a, b, c, d].map(host)).size).toBe(4);
      // A command is checked on every call, options seen before or not.
      await expect(pool.run([])).rejects.toMatchObject({ step: 'config', path: 'command' });
      await expect(pool.run(['a\0b'], given)).rejects.toMatchObject({ step: 'config', path: 'command[0]' });
      expect(pool.stats()).toMatchObject({ handedOver: 4, failed: 0 });
    });
  });

  it('keeps a call’s process under the options it was parsed from: a capAdd whose toJSON hides it is no call without options', async () => {
    await withPool({ size: 2 }, async (pool) => {
      await ready(pool, 2);
      const sysAdmin = (r: { stdout: string }) => {
        const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(r.stdout)?.[1];
        expect(eff, r.stdout).toBeDefined();
        return (BigInt(`0x${eff!}`) & (1n << 21n)) !== 0n;
      };
      const status = ['cat', '/proc/self/status'];
      // The hostile review's proof: this call was kept under the key of no
      // options, and the next call without any got CAP_SYS_ADMIN.
      const hidden = await pool.run(status, { capAdd: Object.assign(['CAP_SYS_ADMIN'], { toJSON: () => undefined }) });
      const plain = await pool.run(status);
      expect(hidden.exitCode, hidden.stderr).toBe(0);
      expect(plain.exitCode, plain.stderr).toBe(0);
      expect(sysAdmin(hidden)).toBe(true);
      expect(sysAdmin(plain)).toBe(false);
    });
  });

  it('gives a container exactly the isolation of a cold one', async () => {
    await withPool({ size: 1, memory: '256m' }, async (pool) => {
      await ready(pool, 1);
      const pooled = await pool.run(['tsbox-probe', 'info']);
      const cold = await run(['tsbox-probe', 'info'], { rootfs, memory: '256m' });
      expect(pooled.exitCode, pooled.stderr).toBe(0);
      expect(cold.exitCode, cold.stderr).toBe(0);
      const p = JSON.parse(pooled.stdout) as ProbeInfo;
      const c = JSON.parse(cold.stdout) as ProbeInfo;
      expect(shape(p)).toEqual(shape(c));
      // Its own namespaces, none of them the host's.
      for (const ns of ['pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup', 'user'] as const) expect(p.ns[ns], ns).not.toBe(hostNamespace(ns));
      expect(p.status.NoNewPrivs).toBe(1);
      expect(p.status.Seccomp).toBe(2);
      // Its own cgroup, with the pool's limit: what a cold one reports.
      expect(pooled.limits).toMatchObject({ memory: 256 * 1024 * 1024 });
      expect(pooled.limits).toEqual(cold.limits);
    });
  });

  it('stats() counts what the pool built and handed over, and times its builds', async () => {
    await withPool({ size: 2 }, async (pool) => {
      // Nothing built yet: no time to give.
      expect(pool.stats()).toMatchObject({ ready: 0, busy: 0, created: 0, handedOver: 0, failed: 0, lastFailure: null, refillMs: { last: null, mean: null } });
      expect(pool.stats().starting).toBeGreaterThan(0);
      await ready(pool, 2);
      const built = pool.stats();
      expect(built).toMatchObject({ ready: 2, busy: 0, starting: 0, created: 2, handedOver: 0 });
      expect(built.refillMs.last).toBeGreaterThan(0);
      expect(built.refillMs.mean).toBeGreaterThan(0);
      const running = await pool.spawn(['sleep', '30']);
      expect(pool.stats()).toMatchObject({ busy: 1, handedOver: 1 });
      running.kill('SIGKILL');
      await running.wait();
      // The used one is replaced, not reused: one build more.
      await ready(pool, 2);
      expect(await eventually(() => pool.stats().busy === 0)).toBe(true);
      expect(pool.stats()).toMatchObject({ ready: 2, created: 3, handedOver: 1, failed: 0 });
    });
  });

  it('hands a call without options to the process its sandbox forked and prepared while it waited, with its PID 1 restricted like it before it runs', async () => {
    await withPool({ size: 2, trace: true, capDrop: ['CAP_NET_RAW'] }, async (pool) => {
      await ready(pool, 2);
      // The command's own status, then its init's (PID 1), and its session.
      const show = ['sh', '-c', 'grep -E "^(Uid|Gid|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):" /proc/self/status /proc/1/status; cut -d" " -f6 /proc/self/stat; id -u'];
      const ahead = await pool.run(show, { env: { A: '1' }, trace: true });
      expect(ahead.exitCode, ahead.stderr).toBe(0);
      expect(ahead.stderr).toMatch(/process: forked ahead as PID 2, prepared as uid 0 gid 0/);
      expect(ahead.stderr).toMatch(/exec: sh \(as PID 2 under init, forked ahead\)/);
      const status = (r: { stdout: string }, file: string) =>
        r.stdout
          .split('\n')
          .filter((l) => l.startsWith(`${file}:`))
          .map((l) => l.slice(file.length + 1));
      // The command and its init, each as in a cold container.
      const cold = await run(show, { rootfs, capDrop: ['CAP_NET_RAW'] });
      expect(cold.exitCode, cold.stderr).toBe(0);
      const own = status(ahead, '/proc/self/status');
      expect(own.length).toBeGreaterThanOrEqual(10);
      expect(own).toEqual(status(cold, '/proc/self/status'));
      expect(status(ahead, '/proc/1/status')).toEqual(status(cold, '/proc/1/status'));
      // Root keeps its capabilities through exec: PID 1 has exactly the command's.
      expect(status(ahead, '/proc/1/status')).toEqual(own);
      expect(own).toContainEqual(expect.stringMatching(/^NoNewPrivs:\s+1$/));
      expect(own).toContainEqual(expect.stringMatching(/^Seccomp:\s+2$/));
      // In its init's session, as when init forks the command at the hand-over.
      expect(ahead.stdout.trim().split('\n').slice(-2)).toEqual(['1', '0']);

      // Another user: that process does not fit. It goes, and the call's is
      // prepared as usual, as in a cold container, and gets its pid 2.
      const other = await pool.run(show, { user: '1000:1000', trace: true });
      const coldOther = await run(show, { rootfs, capDrop: ['CAP_NET_RAW'], user: '1000:1000' });
      expect(other.exitCode, other.stderr).toBe(0);
      expect(other.stderr).toMatch(/process: the one forked ahead does not fit \(its user differs\); prepared as usual/);
      expect(other.stderr).toMatch(/exec: sh \(as PID 2 under init\)\n/);
      expect(status(other, '/proc/self/status')).toEqual(status(coldOther, '/proc/self/status'));
      expect(status(other, '/proc/1/status')).toEqual(status(coldOther, '/proc/1/status'));
      expect(other.stdout.trim().split('\n').slice(-2)).toEqual(['1', '1000']);
      expect(pool.stats()).toMatchObject({ handedOver: 2, failed: 0 });
    });
  });

  it('reports a command that cannot start as run() does, from the process forked ahead as from one prepared at the hand-over', async () => {
    await withPool({ size: 2 }, async (pool) => {
      await ready(pool, 2);
      const cold = await run(['no-such-command'], { rootfs }).catch((e: unknown) => e);
      for (const options of [{}, { user: '1000' }]) {
        const err = await pool.run(['no-such-command'], options).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TsboxError);
        expect(err).toMatchObject({ step: 'exec', errno: 2, exitCode: 127, path: 'no-such-command' });
        expect((err as TsboxError).message).toBe((cold as TsboxError).message);
      }
      // A process the one forked ahead does not fit, that cannot start: its own error, as cold.
      for (const options of [{ cwd: '/etc/passwd' }, { user: 'no-such-user' }]) {
        await ready(pool, 1);
        const coldErr = await run(['true'], { rootfs, ...options }).catch((e: unknown) => e);
        const err = await pool.run(['true'], options).catch((e: unknown) => e);
        expect(coldErr, JSON.stringify(options)).toBeInstanceOf(TsboxError);
        expect(err, JSON.stringify(options)).toBeInstanceOf(TsboxError);
        expect((err as TsboxError).message).toBe((coldErr as TsboxError).message);
        expect((err as TsboxError).step).toBe((coldErr as TsboxError).step);
      }
      expect(pool.stats().failed).toBe(0);
    });
  });

  it('gives the command the descriptors a cold one gets, and prepares it as usual when the process forked ahead died', async () => {
    await withPool({ size: 1, trace: true }, async (pool) => {
      await ready(pool, 1);
      const fds = ['sh', '-c', 'ls /proc/self/fd'];
      const pooled = await pool.run(fds, { trace: true });
      const cold = await run(fds, { rootfs });
      expect(pooled.stderr).toMatch(/forked ahead\)/);
      expect(pooled.stdout).toBe(cold.stdout);
      // The waiting process (a tsbox-init whose parent is a ready sandbox's PID 1) dies.
      await ready(pool, 1);
      // (A used sandbox's processes may exit while this reads: not an error.)
      const parentOf = (pid: number) => {
        try {
          return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[3]);
        } catch {
          return null;
        }
      };
      const waiting = () => {
        const helpers = ownHelpers();
        const mine = helpers.filter((pid) => parentOf(pid) === process.pid);
        return helpers.filter((pid) => {
          const parent = parentOf(pid);
          return parent !== null && helpers.includes(parent) && !mine.includes(parent);
        });
      };
      expect(await eventually(() => waiting().length === 1, 15_000), JSON.stringify(waiting())).toBe(true);
      process.kill(waiting()[0]!, 'SIGKILL');
      const after = await pool.run(['echo', 'fine'], { trace: true });
      expect(after.stdout).toBe('fine\n');
      expect(after.stderr, after.stderr).toMatch(/process: the one forked ahead is gone; prepared as usual/);
      expect(after.stderr, after.stderr).toMatch(/exec: echo \(as PID 2 under init\)\n/);
      expect(pool.stats().failed).toBe(0);
    });
  });

  it("gives the command the pid and parent a cold container's has, whether the process forked ahead fits or not", async () => {
    // The init sets the pid namespace's ns_last_pid (a kernel with CONFIG_CHECKPOINT_RESTORE).
    expect(existsSync('/proc/sys/kernel/ns_last_pid'), 'no ns_last_pid in this kernel: a call that does not fit gets PID 3').toBe(true);
    await withPool({ size: 1, trace: true }, async (pool) => {
      // Its descriptors and its read-only /proc/sys too: the init's way to
      // the pid counter never reaches it.
      const pids = ['sh', '-c', 'echo $$ $PPID; ls /proc/self/fd; echo 5 2>/dev/null > /proc/sys/kernel/ns_last_pid && echo written || echo refused'];
      const calls: [Record<string, unknown>, RegExp][] = [
        [{}, /exec: sh \(as PID 2 under init, forked ahead\)/],
        [{ cwd: '/tmp' }, /does not fit \(its cwd differs\); prepared as usual/],
        [{ user: '1000' }, /does not fit \(its user differs\); prepared as usual/],
        [{ env: { A: '1' }, cwd: '/' }, /exec: sh \(as PID 2 under init, forked ahead\)/],
      ];
      for (const [options, way] of calls) {
        await ready(pool, 1);
        const pooled = await pool.run(pids, { ...options, trace: true });
        const cold = await run(pids, { rootfs, ...options });
        expect(pooled.exitCode, pooled.stderr).toBe(0);
        expect(pooled.stderr, JSON.stringify(options)).toMatch(way);
        expect(pooled.stdout, JSON.stringify(options)).toBe(cold.stdout);
        expect(pooled.stdout).toMatch(/^2 1\n(.|\n)*refused\n$/);
      }
      expect(pool.stats()).toMatchObject({ handedOver: 4, failed: 0 });
    });
  });

  it('uses each sandbox once: a second run sees nothing of the first', async () => {
    await withPool({ size: 2 }, async (pool) => {
      await ready(pool, 2);
      const first = await pool.run(['sh', '-c', 'echo secret > /tmp/left; echo secret > /left; tsbox-probe info']);
      const second = await pool.run(['sh', '-c', 'cat /tmp/left /left 2>&1; tsbox-probe info']);
      expect(first.id).not.toBe(second.id);
      expect(second.stdout).toContain('No such file');
      expect(second.stdout).not.toContain('secret');
      const a = JSON.parse(first.stdout.slice(first.stdout.indexOf('{'))) as ProbeInfo;
      const b = JSON.parse(second.stdout.slice(second.stdout.indexOf('{'))) as ProbeInfo;
      for (const ns of ['pid', 'mnt', 'net', 'ipc', 'uts', 'user'] as const) expect(a.ns[ns]).not.toBe(b.ns[ns]);
      // The used sandboxes are gone, not back in the pool.
      expect(await eventually(() => leftovers([first.id, second.id]).filter((l) => !l.startsWith('process')).length === 0)).toBe(true);
      expect(pool.stats().handedOver).toBe(2);
    });
  });

  it('refuses call options that need another sandbox, and limits looser than the pool’s, naming them', async () => {
    await withPool({ size: 0, memory: '128m', pidsLimit: 100 }, async (pool) => {
      for (const [options, path] of [
        [{ hostname: 'x' }, 'hostname'],
        [{ volumes: ['/tmp:/mnt'] }, 'volumes'],
        [{ rootfs: '/' }, 'rootfs'],
        [{ tty: true }, 'tty'],
        [{ memory: '1g' }, 'memory'],
        [{ pidsLimit: -1 }, 'pidsLimit'],
        // Its init and its command are two processes.
        [{ pidsLimit: 1 }, 'pidsLimit'],
      ] as const) {
        const err = await pool.run(['true'], options as never).catch((e: unknown) => e);
        expect(err, path).toBeInstanceOf(TsboxError);
        expect(err).toMatchObject({ step: 'config', path });
      }
      expect(pool.stats()).toMatchObject({ created: 0, handedOver: 0 });
      expect(() => createPool({ rootfs, detach: true } as never)).toThrow(/detach/);
      expect(() => createPool({ rootfs, size: 4, max: 2 })).toThrow(/max/);
      expect(() => createPool({ rootfs, memory: 'lots' })).toThrow(TsboxError);
    });
  });

  it('refuses a call’s limit above what the pool’s unified sets for its cgroup file, naming both', async () => {
    // unified is written over the pool's options, and a call's memory,
    // pidsLimit or cpus over unified's file: the call must not raise it. The
    // check comes before a sandbox is taken, so it holds on any host (a
    // hybrid one refuses unified when it builds, which size 0 never does).
    await withPool({ size: 0, pidsLimit: -1, unified: { 'memory.max': '128M', 'pids.max': '100', 'cpu.max': '50000 100000' } }, async (pool) => {
      for (const [options, path, file] of [
        [{ memory: '1g' }, 'memory', 'memory.max'],
        [{ pidsLimit: 1000 }, 'pidsLimit', 'pids.max'],
        [{ pidsLimit: -1 }, 'pidsLimit', 'pids.max'],
        [{ cpus: 2 }, 'cpus', 'cpu.max'],
      ] as const) {
        const err = await pool.run(['true'], options).catch((e: unknown) => e);
        expect(err, path).toBeInstanceOf(TsboxError);
        expect(err).toMatchObject({ step: 'config', path, message: expect.stringContaining(`the pool's unified["${file}"]`) });
      }
      expect(pool.stats()).toMatchObject({ created: 0, handedOver: 0 });
    });
  });

  it('applies a tighter limit to the call’s sandbox only, and reports it', async () => {
    await withPool({ size: 2, memory: '256m', pidsLimit: 200 }, async (pool) => {
      await ready(pool, 2);
      const read = 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max';
      const tight = await pool.run(['sh', '-c', read], { memory: '64m', pidsLimit: 20 });
      expect(tight.stdout.split('\n').slice(0, 2)).toEqual([String(64 * 1024 * 1024), '20']);
      expect(tight.limits).toMatchObject({ memory: 64 * 1024 * 1024, pidsLimit: 20 });
      const plain = await pool.run(['sh', '-c', read]);
      expect(plain.stdout.split('\n').slice(0, 2)).toEqual([String(256 * 1024 * 1024), '200']);
    });
  });

  it('spawns with streams, a per-call timeout, and an abort signal, as spawn() does', async () => {
    await withPool({ size: 2 }, async (pool) => {
      await ready(pool, 2);
      const c = await pool.spawn(['sh', '-c', 'read x; echo "got $x"']);
      const out = text(c.stdout);
      c.stdin!.end('it\n');
      expect(await c.wait()).toMatchObject({ exitCode: 0 });
      expect(await out).toBe('got it\n');
      const timed = await pool.run(['sleep', '30'], { timeout: 300 });
      expect(timed).toMatchObject({ timedOut: true, signal: 'SIGKILL', exitCode: 137 });
      const ac = new AbortController();
      const aborted = pool.run(['sleep', '30'], { signal: ac.signal });
      setTimeout(() => ac.abort(), 200);
      await expect(aborted).rejects.toBeInstanceOf(AbortError);
    });
  });

  it('rejects a command that cannot start as run() does, and discards that sandbox', async () => {
    await withPool({ size: 1 }, async (pool) => {
      await ready(pool, 1);
      const err = await pool.run(['no-such-command']).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TsboxError);
      expect(err).toMatchObject({ step: 'exec', errno: 2, exitCode: 127, path: 'no-such-command' });
      expect(pool.stats().failed).toBe(0);
      expect((await pool.run(['echo', 'ok'])).stdout).toBe('ok\n');
    });
  });

  it('refills after an OOM kill, and after a ready sandbox’s monitor or PID 1 is killed; a caller never gets a dead one', async () => {
    await withPool({ size: 1, memory: '48m' }, async (pool) => {
      await ready(pool, 1);
      // A caller's process that runs out of memory: its result says so, and the pool refills.
      const oom = await pool.run(['tsbox-probe', 'alloc', '200']);
      expect(oom.oomKilled).toBe(true);
      await ready(pool, 1);
      const created = pool.stats().created;
      // A ready sandbox whose monitor (tsbox-init, this process's child) is
      // killed, once the used one's has finished its teardown.
      expect(await eventually(() => monitors().length === 1)).toBe(true);
      process.kill(monitors()[0]!, 'SIGKILL');
      expect(await eventually(() => pool.stats().failed === 1 && pool.stats().ready === 1, 15_000), JSON.stringify(pool.stats())).toBe(true);
      expect(pool.stats().created).toBe(created + 1);
      // A ready sandbox whose PID 1 dies while it waits (as the OOM killer would do).
      expect(await eventually(() => monitors().length === 1)).toBe(true);
      const pid1 = descendants(monitors()[0]!)[0]!;
      process.kill(pid1, 'SIGKILL');
      expect(await eventually(() => pool.stats().failed === 2 && pool.stats().ready === 1, 15_000), JSON.stringify(pool.stats())).toBe(true);
      expect(pool.stats().lastFailure).toMatch(/died/);
      expect((await pool.run(['echo', 'fine'])).stdout).toBe('fine\n');
    });
  });

  it('close() kills what runs, removes every sandbox, and refuses later calls', async () => {
    const pool = createPool({ rootfs, size: 3 });
    await ready(pool, 3);
    const running = await pool.spawn(['sleep', '30']);
    // Its replacement is built while it runs.
    await ready(pool, 3);
    const ids = ownContainers();
    // tsbox ps shows the running one's command, and the ready ones as waiting.
    const ps = await cli(['ps']);
    expect(ps.stdout).toMatch(new RegExp(`^${running.id.slice(0, 12)}\\s+sleep 30\\s`, 'm'));
    const waiting = ids.filter((id) => id !== running.id).map((id) => id.slice(0, 12));
    for (const id of waiting) expect(ps.stdout).toMatch(new RegExp(`^${id}\\s+\\(pooled, no process yet\\)\\s+\\S+ ago\\s+Created`, 'm'));
    expect(ids).toContain(running.id);
    expect(ids.length).toBeGreaterThanOrEqual(4);
    await pool.close();
    expect(await running.wait()).toMatchObject({ signal: 'SIGKILL' });
    expect(leftovers(ids)).toEqual([]);
    expect(ownContainers()).toEqual([]);
    await expect(pool.run(['true'])).rejects.toMatchObject({ step: 'pool' });
    expect(pool.stats()).toMatchObject({ ready: 0, busy: 0, starting: 0 });
  });

  it('close() during a hand-over: the call rejects, and its container is killed with the rest', async () => {
    const pool = createPool({ rootfs, size: 1 });
    await ready(pool, 1);
    const ids = ownContainers();
    const call = pool.run(['sleep', '30']);
    // By the next turn of the event loop the call has taken the sandbox and
    // sent its process; `started` comes later (the relay, PID 1, the exec).
    await new Promise((resolve) => setImmediate(resolve));
    expect(pool.stats()).toMatchObject({ ready: 0, busy: 1, handedOver: 0 });
    const closing = pool.close();
    await expect(call).rejects.toMatchObject({ step: 'pool' });
    await closing;
    // Its process had started when close() took it: the hand-over was done.
    expect(pool.stats().handedOver).toBe(1);
    expect(monitors()).toEqual([]);
    expect(leftovers(ids)).toEqual([]);
    expect(ownContainers()).toEqual([]);
  });

  it('a hand-over onto a sandbox that died unnoticed moves on to the next one, and counts it', async () => {
    await withPool({ size: 2 }, async (pool) => {
      await ready(pool, 2);
      expect(await eventually(() => monitors().length === 2)).toBe(true);
      // Both ready sandboxes' monitors killed, and a call made in the same
      // turn: it takes one before the pool hears of its death, whose send
      // or read then finds the channel closed.
      for (const pid of monitors()) process.kill(pid, 'SIGKILL');
      const r = await pool.run(['echo', 'ok']);
      expect(r.stdout).toBe('ok\n');
      expect(r.exitCode).toBe(0);
      expect(await eventually(() => pool.stats().failed === 2), JSON.stringify(pool.stats())).toBe(true);
      expect(pool.stats().lastFailure).toMatch(/died|ended by SIGKILL/);
    });
  });

  it('a program that calls process.exit() right after a pooled run leaves nothing of it or of its pool', async () => {
    // The pool gives a container's cgroup and state back after its result;
    // an exit before that still gives them back (and the ready sandbox's
    // monitor cleans up after its caller). The exit comes while the refill
    // is being built, between its steps (LaunchExtras.background): what it
    // made so far goes too.
    const script = `
      import { createPool } from ${JSON.stringify(join(REPO, 'dist/tsbox.js'))};
      const pool = createPool({ rootfs: ${JSON.stringify(rootfs)}, size: 1 });
      while (pool.stats().ready < 1) await new Promise((r) => setTimeout(r, 20));
      const r = await pool.run(['echo', 'done']);
      while (pool.stats().starting === 0) await new Promise((r) => setImmediate(r));
      process.stdout.write(JSON.stringify({ id: r.id, out: r.stdout }));
      process.exit(0);`;
    // State directories without a state.json that stay so: a launch's, abandoned.
    const bare = () => new Set(readdirSync(stateRoot()).filter((n) => /^[0-9a-f]{64}$/.test(n) && !existsSync(join(stateRoot(), n, 'state.json'))));
    const r = await runCommand(process.execPath, ['--input-type=module', '-e', script]);
    expect(r.code, r.stderr).toBe(0);
    const { id, out } = JSON.parse(r.stdout) as { id: string; out: string };
    expect(out).toBe('done\n');
    expect(tsboxCgroups().filter((dir) => dir.endsWith(`/${id}`))).toEqual([]);
    expect(existsSync(join(stateRoot(), id))).toBe(false);
    const first = bare();
    await new Promise((r) => setTimeout(r, 300));
    expect([...bare()].filter((n) => first.has(n))).toEqual([]);
  });

  it('await pool.close() at the end of a program completes: it holds Node until its sandboxes are gone', async () => {
    const script = `
      import { createPool } from ${JSON.stringify(join(REPO, 'dist/tsbox.js'))};
      const pool = createPool({ rootfs: ${JSON.stringify(rootfs)}, size: 2 });
      while (pool.stats().ready < 2) await new Promise((r) => setTimeout(r, 20));
      await pool.run(['true']);
      await pool.close();
      process.stdout.write('closed');`;
    const r = await runCommand(process.execPath, ['--input-type=module', '-e', script]);
    // 13 would be Node's "unsettled top-level await": close() waited on nothing that kept Node running.
    expect({ code: r.code, stdout: r.stdout }, r.stderr).toEqual({ code: 0, stdout: 'closed' });
  });

  it('1000 pooled runs, 8 at a time, leave no descriptor, cgroup, mount, state or process', async () => {
    // Warm-up: the first container starts the addon's event-loop integration.
    await run(['true'], { rootfs });
    // What it held (its id range's lock) goes back right after its result.
    await new Promise((r) => setTimeout(r, 100));
    const fds = fdCount();
    const mounts = mountCount();
    const seen: string[] = [];
    await withPool({ size: 8 }, async (pool) => {
      for (let i = 0; i < 1000; i += 8) {
        const batch = await Promise.all(Array.from({ length: Math.min(8, 1000 - i) }, (_, k) => pool.run(['sh', '-c', `echo ${i + k}`])));
        batch.forEach((r, k) => expect(`${r.exitCode} ${r.stdout}`).toBe(`0 ${i + k}\n`));
        seen.push(...batch.map((r) => r.id));
      }
      expect(new Set(seen).size).toBe(1000);
      expect(pool.stats()).toMatchObject({ handedOver: 1000, failed: 0 });
    });
    expect(leftovers(seen)).toEqual([]);
    expect(ownContainers()).toEqual([]);
    // Their id ranges are free again: a block's lock file stays for the next
    // holder, emptied (no note of a container that has gone), and unlocked.
    const ids = join(stateRoot(), 'ids');
    for (const name of readdirSync(ids).filter((n) => /^\d+\.lock$/.test(n))) {
      const note = readFileSync(join(ids, name), 'utf8');
      expect(seen.some((id) => note.startsWith(id)), `${name}: ${note}`).toBe(false);
    }
    expect(await eventually(() => fdCount() === fds, 2_000), readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return fd; } }).join(' ')).toBe(true);
    expect(mountCount()).toBe(mounts);
  }, 300_000);
});
