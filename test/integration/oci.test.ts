/**
 * tsbox as an OCI runtime (issue 15), driven as runc's callers drive it:
 * `create` with its stdio in files, then `start`, `state`, `kill`, `delete`
 * from other processes, with the runtime-spec's rules on each and what the
 * container's process sees.
 */
import { execFileSync, spawn as spawnProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { afterEach, describe, expect, inject, it } from 'vitest';

import { RUNTIME_TOOLS_DEVICE_RULES, runtimeToolsConfig, type Config } from '../support/oci.js';
import { probePath } from '../support/rootfs.js';
import { locateNative } from '../../ts/native.js';
import { alive, BIN, cli, eventually, scratchDir } from '../support/tsbox.js';
import { throwawayUser } from '../support/host.js';

const rootfs = inject('rootfs');
const scratch = scratchDir('oci');
let serial = 0;
const made: string[] = [];
/** A fresh container id; whatever a failed test leaves of it is deleted after the test. */
const newId = () => {
  const id = `oci-${process.pid}-${++serial}`;
  made.push(id);
  return id;
};
afterEach(async () => {
  for (const id of made.splice(0)) await cli(['delete', '--force', id]);
});

/**
 * runtime-tools' default config (no user namespace, caps with MKNOD,
 * deny-all devices) over the test rootfs, read-only, with the bundle's
 * `out/` at /var for what the process writes.
 */
function bundle(script: string, change: (c: Config) => void = () => {}): string {
  const dir = join(scratch, `b${++serial}`);
  mkdirSync(join(dir, 'out'), { recursive: true });
  const config = runtimeToolsConfig(rootfs, ['sh', '-c', script]);
  config.root.readonly = true;
  config.mounts.push({ destination: '/var', type: 'bind', source: 'out', options: ['rbind', 'rw'] });
  change(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

/** A container of `dir` created and started: its id, once it runs (or, `wait` false, once started). */
async function running(dir: string, wait = true): Promise<string> {
  const id = newId();
  const created = await create(dir, [id]);
  expect(created.code, created.stderr).toBe(0);
  expect((await cli(['start', id])).code).toBe(0);
  if (wait) await waitFor(id, 'running');
  return id;
}

/** A container of `dir` created, started and ended: its id. */
async function ranToEnd(dir: string): Promise<string> {
  const id = await running(dir, false);
  await waitFor(id, 'stopped');
  return id;
}

/**
 * A console socket at `sock` (tsbox-probe recvtty): it types `input` into
 * the terminal it gets, and resolves with what the terminal printed.
 */
async function consoleSocket(sock: string, input: string): Promise<{ printed: Promise<string>; stop: () => void }> {
  const recv = spawnProcess(probePath(), ['recvtty', sock, input], { stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  recv.stdout.setEncoding('utf8').on('data', (d: string) => (seen += d));
  const printed = new Promise<string>((res, rej) => recv.on('exit', (code) => (code === 0 ? res(seen) : rej(new Error(`recvtty exited with ${code}`)))));
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
  return { printed, stop: () => recv.kill('SIGKILL') };
}

/** `tsbox create` as runtime-tools runs it: its stdout and stderr are files (the container's). */
function create(dir: string, args: string[], global: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return withFiles(dir, [...global, 'create', '--bundle', dir, ...args], `create-${serial}`);
}

/**
 * tsbox with its stdout and stderr in files under `dir`: what it leaves
 * running (a container, a detached exec) keeps them, which pipes would make
 * the test wait for.
 */
function withFiles(dir: string, args: string[], name: string, as: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const out = join(dir, `${name}.out`);
  const err = join(dir, `${name}.err`);
  const fds = [openSync(out, 'w'), openSync(err, 'w')];
  return new Promise((resolve, reject) => {
    const child = spawnProcess(process.execPath, [BIN, ...args], { stdio: ['ignore', fds[0]!, fds[1]!], ...as });
    for (const fd of fds) closeSync(fd);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') });
    });
  });
}

interface State {
  ociVersion: string;
  id: string;
  status: string;
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
}

async function state(id: string, global: string[] = []): Promise<State> {
  const r = await cli([...global, 'state', id]);
  if (r.code !== 0) throw new Error(`state ${id}: ${r.stderr}`);
  return JSON.parse(r.stdout) as State;
}

async function waitFor(id: string, status: string, global: string[] = []): Promise<void> {
  let last = '';
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    last = (await state(id, global)).status;
    if (last === status) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${id} did not become ${status} (it is ${last})`);
}

describe('the OCI lifecycle', () => {
  it('create leaves the process waiting; start runs it once; state, kill and delete follow the runtime-spec', async () => {
    const id = newId();
    const dir = bundle("echo 'process called' >> /var/output");
    const pidFile = join(dir, 'pidfile');
    const created = await create(dir, ['--pid-file', pidFile, id]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toBe('');
    const s = await state(id);
    expect(s).toMatchObject({ ociVersion: '1.0.2', id, status: 'created', bundle: dir });
    // The pid file holds the pid in the host's pid namespace, as digits only.
    expect(readFileSync(pidFile, 'utf8')).toBe(String(s.pid));
    expect(readFileSync(`/proc/${s.pid}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
    expect(existsSync(join(dir, 'out/output'))).toBe(false);

    const started = await cli(['start', id]);
    expect(started.code, started.stderr).toBe(0);
    await waitFor(id, 'stopped');
    expect(readFileSync(join(dir, 'out/output'), 'utf8')).toBe('process called\n');

    // A stopped container cannot start again, nor be signalled; its state stays as it was.
    const before = await state(id);
    expect(before.pid).toBe(0);
    const again = await cli(['start', id]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('cannot start a container that has stopped');
    const kill = await cli(['kill', id, 'KILL']);
    expect(kill.code).not.toBe(0);
    expect(kill.stderr).toContain('container not running');
    expect(await state(id)).toEqual(before);
    expect(readFileSync(join(dir, 'out/output'), 'utf8')).toBe('process called\n');

    const deleted = await cli(['delete', id]);
    expect(deleted.code, deleted.stderr).toBe(0);
    const gone = await cli(['state', id]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('container does not exist');
    expect((await cli(['list', '--format', 'json'])).stdout).not.toContain(`"${id}"`);
  });

  it('create refuses a missing id and an id in use; start, state, kill and delete refuse a missing or unknown id', async () => {
    const dir = bundle('true');
    const noId = await create(dir, []);
    expect(noId.code).not.toBe(0);
    expect(noId.stderr).toContain("needs the container's id");
    const id = newId();
    expect((await create(dir, [id])).code).toBe(0);
    const dup = await create(dir, [id]);
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toMatch(new RegExp(`the name "${id}" is in use`));
    expect((await state(id)).status).toBe('created');
    for (const args of [['start'], ['state'], ['delete'], ['kill'], ['start', 'nope'], ['state', 'nope'], ['kill', 'nope', 'KILL'], ['delete', 'nope']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
    }
    expect((await cli(['delete', '--force', id])).code).toBe(0);
  });

  it('two creates of one id at once: exactly one has it (the name is checked and taken under a lock)', async () => {
    const dir = bundle('true');
    const id = newId();
    for (let round = 0; round < 3; round++) {
      const both = await Promise.all([withFiles(dir, ['create', '--bundle', dir, id], `race-a-${round}`), withFiles(dir, ['create', '--bundle', dir, id], `race-b-${round}`)]);
      expect(both.map((r) => r.code === 0).filter(Boolean)).toHaveLength(1);
      expect(both.find((r) => r.code !== 0)!.stderr).toContain(`the name "${id}" is in use`);
      expect((await cli(['list', '--format', 'json'])).stdout.split(`"id":"${id}"`)).toHaveLength(2);
      expect((await cli(['delete', '--force', id])).code).toBe(0);
    }
    expect(readdirSync('/run/tsbox')).not.toContain('names.lock');
  });

  it('a created container: delete refuses it and it stays; kill KILL stops it; delete --force removes one', async () => {
    const dir = bundle('touch /var/ran');
    const id = newId();
    expect((await create(dir, [id])).code).toBe(0);
    const refused = await cli(['delete', id]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`cannot delete container ${id} that is not stopped: created`);
    expect((await state(id)).status).toBe('created');
    expect((await cli(['kill', id, 'KILL'])).code).toBe(0);
    await waitFor(id, 'stopped');
    expect(existsSync(join(dir, 'out/ran'))).toBe(false);
    expect((await cli(['delete', id])).code).toBe(0);

    const other = newId();
    expect((await create(dir, [other])).code).toBe(0);
    expect((await cli(['delete', '--force', other])).code).toBe(0);
    expect((await cli(['state', other])).code).not.toBe(0);
  });

  it('a config without a process: create makes the container (its hooks run); start fails, as the runtime-spec says, and nothing runs', async () => {
    const dir = bundle('true', (c) => {
      delete (c as { process?: unknown }).process;
      c.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', `echo prestart >> ${join(scratch, 'noproc-hook')}`] }] };
    });
    const id = newId();
    const created = await create(dir, [id]);
    expect(created.code, created.stderr).toBe(0);
    expect(readFileSync(join(scratch, 'noproc-hook'), 'utf8')).toBe('prestart\n');
    const { status, pid } = await state(id);
    expect(status).toBe('created');
    const started = await cli(['start', id]);
    expect(started.code).not.toBe(0);
    expect(started.stderr).toContain(`start(${id}): EINVAL — its config.json has no process: there is nothing to start`);
    // Still created, its PID 1 still waiting: no process ran.
    expect((await state(id)).status).toBe('created');
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('tsbox-init');
    expect((await cli(['delete', '--force', id])).code).toBe(0);
    expect((await cli(['state', id])).code).not.toBe(0);
  });

  it('kill sends its signal to the container\'s PID 1 (TERM by default), which traps it', async () => {
    for (const sig of ['TERM', 'USR1']) {
      const dir = bundle(`trap 'touch /var/${sig}; exit 0' ${sig}; sleep 10 & wait $!`);
      const id = newId();
      expect((await create(dir, [id])).code).toBe(0);
      expect((await cli(['start', id])).code).toBe(0);
      await waitFor(id, 'running');
      // sh installs its trap once it runs: give it the moment it takes.
      await new Promise((r) => setTimeout(r, 200));
      expect((await cli(sig === 'TERM' ? ['kill', id] : ['kill', id, sig])).code).toBe(0);
      await waitFor(id, 'stopped');
      expect(existsSync(join(dir, `out/${sig}`))).toBe(true);
      expect((await cli(['delete', id])).code).toBe(0);
    }
  });
});

describe('terminal', () => {
  it('process.terminal: create sends the console to --console-socket; the process has it as its terminal, sized, and as /dev/console', async () => {
    const dir = bundle('unused', (c) => {
      c.process.terminal = true;
      c.process.args = ['sh'];
      c.process.consoleSize = { height: 30, width: 100 };
    });
    const sock = join(dir, 'console.sock');
    const receiver = await consoleSocket(sock, 'tty; stty size; [ /dev/console -ef /proc/self/fd/0 ] && echo is-console; exit\n');
    try {
      const id = newId();
      const created = await create(dir, ['--console-socket', sock, id]);
      expect(created.code, created.stderr).toBe(0);
      expect((await cli(['start', id])).code).toBe(0);
      await waitFor(id, 'stopped');
      const lines = (await receiver.printed).split(/\r?\n/);
      expect(lines).toContain('/dev/pts/0');
      expect(lines).toContain('30 100');
      expect(lines).toContain('is-console');
      expect((await cli(['delete', id])).code).toBe(0);
    } finally {
      receiver.stop();
    }
  });

  it('with a console socket, nothing create leaves running holds its stdout or stderr: a caller reading them to their end (containerd\'s shim) is not kept waiting', async () => {
    const dir = bundle('unused', (c) => {
      c.process.terminal = true;
      c.process.args = ['sh'];
    });
    const sock = join(dir, 'console.sock');
    const receiver = await consoleSocket(sock, 'tty; exit\n');
    try {
      const id = newId();
      // cli() resolves once its stdout and stderr (pipes) are closed: as go-runc
      // reads a create without IO, to EOF, before it takes the terminal.
      const created = await Promise.race([
        cli(['create', '--bundle', dir, '--console-socket', sock, id]),
        new Promise<'still open'>((r) => setTimeout(() => r('still open'), 10_000)),
      ]);
      expect(created).not.toBe('still open');
      expect(created).toMatchObject({ code: 0, signal: null, stdout: '' });
      expect((await cli(['start', id])).code).toBe(0);
      await waitFor(id, 'stopped');
      expect((await receiver.printed).split(/\r?\n/)).toContain('/dev/pts/0');
      expect((await cli(['delete', id])).code).toBe(0);
    } finally {
      receiver.stop();
    }
  });

  it('exec --tty --console-socket: the exec\'d process gets a terminal of its own, sent to the socket', async () => {
    const dir = bundle('sleep 100');
    const id = await running(dir);
    const sock = join(dir, 'exec.sock');
    const receiver = await consoleSocket(sock, 'tty; exit 5\n');
    try {
      const r = await withFiles(dir, ['exec', '--tty', '--console-socket', sock, id, 'sh'], 'exec-tty');
      expect(r.code, r.stderr).toBe(5);
      expect((await receiver.printed).split(/\r?\n/)).toContain('/dev/pts/0');
    } finally {
      receiver.stop();
    }
    expect((await cli(['delete', '--force', id])).code).toBe(0);
  });

  it('refuses a terminal without a console socket, and a console socket without a terminal', async () => {
    const tty = bundle('true', (c) => {
      c.process.terminal = true;
    });
    const a = await create(tty, [newId()]);
    expect(a.code).not.toBe(0);
    expect(a.stderr).toContain('process.terminal needs a console socket');
    const plain = bundle('true');
    const b = await create(plain, ['--console-socket', join(plain, 'x.sock'), newId()]);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toContain('there is no terminal to send: process.terminal is false');
  });
});

describe('exec', () => {
  it('runs the config\'s process changed by runc\'s flags, with the container\'s seccomp and its exit status', async () => {
    const dir = bundle('sleep 100', (c) => {
      c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
    });
    const id = await running(dir);
    const r = await cli(['exec', '--user', '10:20', '--additional-gids', '5', '--cwd', '/tmp', '--env', 'X=1', '--cap', 'CAP_NET_ADMIN', id, 'sh', '-c', 'id -u; id -G; pwd; echo $X; grep CapBnd /proc/self/status; mkdir /tmp/d 2>&1; exit 3']);
    expect(r.code).toBe(3);
    // CAP_NET_ADMIN (bit 12) added to the config's sets (uid 10 has no effective
    // ones after execve: the bounding set shows it); mkdir refused by the profile.
    const [uid, groups, cwd, x, capBnd, mkdir] = r.stdout.trim().split('\n');
    expect([uid, groups, cwd, x]).toEqual(['10', '20 5', '/tmp', '1']);
    expect(BigInt(`0x${capBnd!.split(/\s+/)[1]}`) & (1n << 12n)).toBe(1n << 12n);
    expect(mkdir).toMatch(/Operation not permitted/);
    // Docker's flags reach it too.
    expect((await cli(['exec', '-w', '/etc', id, 'pwd'])).stdout).toBe('/etc\n');
    // Nothing that could undo the container's device rule (no user namespace:
    // CAP_SYS_ADMIN could rewrite or leave its device cgroup): refused as at create.
    const admin = await cli(['exec', '--cap', 'CAP_SYS_ADMIN', id, 'true']);
    expect(admin.code).not.toBe(0);
    expect(admin.stderr).toContain('process.capabilities.bounding: has CAP_SYS_ADMIN');
    expect((await cli(['delete', '--force', id])).code).toBe(0);
  });

  it('a tsbox-init that cannot be started: exec --detach fails with 125 and says which, as run does; the container runs on', async () => {
    const id = await running(bundle('sleep 100'));
    const dir = join(scratch, 'badinit');
    mkdirSync(dir);
    const { addonPath } = locateNative();
    copyFileSync(addonPath, join(dir, basename(addonPath)));
    writeFileSync(join(dir, 'tsbox-init'), 'not a program\n', { mode: 0o755 });
    const init = join(dir, 'tsbox-init');
    const r = await cli(['exec', '--detach', id, 'true'], { env: { ...process.env, TSBOX_NATIVE_DIR: dir } });
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`tsbox: spawn_helper(${init}): start ${init}: Exec format error (ENOEXEC); reinstall tsbox, or point TSBOX_NATIVE_DIR at a build holding tsbox-init\n`);
    expect((await cli(['exec', id, 'true'])).code).toBe(0);
    expect((await cli(['delete', '--force', id])).code).toBe(0);
  });

  it('--process FILE --detach --pid-file: the process runs on after exec has returned; the pid file has its host pid', async () => {
    const dir = bundle('sleep 100');
    const id = await running(dir);
    const proc = join(dir, 'process.json');
    writeFileSync(proc, JSON.stringify({ user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'echo detached > /var/exec; exec sleep 50'], env: ['PATH=/bin'], cwd: '/', oomScoreAdj: 300, capabilities: { bounding: ['CAP_DAC_OVERRIDE'], effective: ['CAP_DAC_OVERRIDE'], permitted: ['CAP_DAC_OVERRIDE'] } }));
    const pidFile = join(dir, 'exec.pid');
    const r = await withFiles(dir, ['exec', '--process', proc, '--detach', '--pid-file', pidFile, id], 'exec');
    expect(r.code, r.stderr).toBe(0);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await new Promise((res) => setTimeout(res, 200));
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('sleep\x0050\x00');
    expect(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim()).toBe('300');
    expect(readFileSync(join(dir, 'out/exec'), 'utf8')).toBe('detached\n');
    expect(readlinkSync(`/proc/${pid}/ns/pid`)).toBe(readlinkSync(`/proc/${(await state(id)).pid}/ns/pid`));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ user: { uid: 0, gid: 0 }, args: ['true'], cwd: 'relative', capabilities: { bounding: ['CAP_NOPE'] } }));
    const refused = await cli(['exec', '--process', bad, id]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`config(${bad}): process.cwd: must be an absolute path`);
    expect((await cli(['delete', '--force', id])).code).toBe(0);
    expect((await cli(['exec', '--cwd', '/', id, 'true'])).stderr).toContain('container does not exist');
  });
});

describe('as conmon and containerd\'s shim drive it', () => {
  it('exec --detach: the process descends from tsbox exec, so its caller\'s subreaper reaps it and has its exit status (conmon\'s exec session, containerd\'s shim)', async () => {
    const dir = bundle('sleep 100');
    const id = newId();
    const execPid = join(dir, 'exec.pid');
    // One subreaper creates, starts and execs, as a containerd shim does; it then waits for the exec'd process.
    const tsbox = (args: string) => `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} ${args}`;
    const script = `${tsbox(`create --bundle ${dir} ${id}`)} && ${tsbox(`start ${id}`)} && ${tsbox(`exec --detach --pid-file ${execPid} ${id} sh -c 'sleep 0.3; exit 5'`)}`;
    const shim = spawnProcess(probePath(), ['subreaper', execPid, '/bin/sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    shim.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((res) => shim.on('exit', res));
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(code, out).toBe(0);
    expect(lines[0]).toEqual({ created: Number(readFileSync(execPid, 'utf8')) });
    expect(lines[1]).toEqual({ exited: 5, signal: null });
    expect((await state(id)).status).toBe('running');
    // A command that is not there fails the exec, as an attached one's would, and leaves nothing.
    const missing = await cli(['exec', '--detach', id, 'no-such-command']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('no-such-command');
    expect((await cli(['ps', id])).stdout.split('\n').filter((l) => /\d/.test(l))).toHaveLength(1);
  });

  it('the container\'s init is the child of create\'s subreaper, which reaps it and has its exit status', async () => {
    const dir = bundle('sleep 0.3; exit 7');
    const id = newId();
    const pidFile = join(dir, 'init.pid');
    const conmon = spawnProcess(probePath(), ['subreaper', pidFile, process.execPath, BIN, 'create', '--bundle', dir, '--pid-file', pidFile, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Record<string, unknown>[] = [];
    conmon.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)));
    const done = new Promise<number | null>((res) => conmon.on('exit', res));
    try {
      for (let i = 0; i < 200 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      const pid = (await state(id)).pid;
      expect(lines[0]).toEqual({ created: pid });
      // Its parent is the subreaper, as a runc container's would be.
      expect(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]).toBe(String(conmon.pid));
      expect((await cli(['start', id])).code).toBe(0);
      expect(await done).toBe(0);
      expect(lines[1]).toEqual({ exited: 7, signal: null });
      await waitFor(id, 'stopped');
      expect((await cli(['delete', id])).code).toBe(0);
    } finally {
      conmon.kill('SIGKILL');
    }
  });
});

describe('seccomp agent (SCMP_ACT_NOTIFY)', () => {
  it('the listener goes to linux.seccomp.listenerPath with the containerProcessState, an exec\'d process\'s too; the agent answers the notified calls; a missing agent is refused', async () => {
    const sock = join(scratch, `agent-${serial}.sock`);
    const out = join(scratch, `agent-${serial}.json`);
    const agent = spawnProcess(probePath(), ['seccomp-agent', sock, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((res, rej) => {
        agent.stdout.once('data', () => res());
        agent.once('exit', (code) => rej(new Error(`the agent exited with ${code}`)));
      });
      const profile = {
        defaultAction: 'SCMP_ACT_ALLOW',
        listenerPath: sock,
        listenerMetadata: 'tsbox-test',
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }],
      };
      const dir = bundle('mkdir /tmp/x 2> /var/err; echo $? > /var/status; touch /var/after; while [ ! -e /var/done ]; do sleep 0.05; done', (c) => {
        c.linux.seccomp = profile;
        c.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: [] });
        c.annotations = { 'org.example.agent': 'yes' };
      });
      const id = newId();
      const created = await create(dir, [id]);
      expect(created.code, created.stderr).toBe(0);
      const pid = (await state(id)).pid;
      expect((await cli(['start', id])).code).toBe(0);
      expect(await eventually(() => existsSync(join(dir, 'out/after')))).toBe(true);
      // An exec'd process's filter has a listener of its own, handed to the same agent.
      const exec = await cli(['exec', id, 'sh', '-c', 'mkdir /tmp/y 2>&1; echo $$']);
      expect(exec.code, exec.stderr).toBe(0);
      expect(exec.stdout).toMatch(/not supported/i);
      const second = JSON.parse(readFileSync(`${out}.1`, 'utf8')) as { fds: string[]; pid: number; metadata: string; state: State };
      expect(second).toMatchObject({ fds: ['seccompFd'], metadata: 'tsbox-test', state: { id, status: 'running' } });
      // Its pid as the host sees it, neither PID 1's nor its own inside the container ($$).
      const inside = Number(exec.stdout.trim().split('\n').at(-1));
      expect(inside).toBeGreaterThan(1);
      expect(second.pid).not.toBe(pid);
      expect(second.pid).not.toBe(inside);
      expect(second.pid).toBeGreaterThan(1);
      writeFileSync(join(dir, 'out/done'), '');
      await waitFor(id, 'stopped');
      // The agent answered mkdir with EOPNOTSUPP; everything else ran.
      expect(readFileSync(join(dir, 'out/err'), 'utf8')).toMatch(/not supported/i);
      expect(readFileSync(join(dir, 'out/status'), 'utf8').trim()).not.toBe('0');
      expect(existsSync(join(dir, 'out/after'))).toBe(true);
      expect(readFileSync(`${out}.calls`, 'utf8')).toMatch(/^notified \d+\n/);
      const sent = JSON.parse(readFileSync(out, 'utf8')) as { ociVersion: string; fds: string[]; pid: number; metadata: string; state: State };
      expect(sent).toMatchObject({ fds: ['seccompFd'], pid, metadata: 'tsbox-test', state: { id, pid, bundle: dir, status: 'created', annotations: { 'org.example.agent': 'yes' } } });
      expect((await cli(['delete', id])).code).toBe(0);
    } finally {
      agent.kill('SIGKILL');
    }
    // No agent listening: create fails, naming the socket, and leaves nothing.
    const dir = bundle('true', (c) => {
      c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: join(scratch, 'nobody-listens.sock'), syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] };
    });
    const id = newId();
    const r = await create(dir, [id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('connect to the seccomp agent\'s socket (linux.seccomp.listenerPath)');
    expect((await cli(['state', id])).code).not.toBe(0);
  });
});

describe('passing descriptors', () => {
  it('--preserve-fds N and LISTEN_FDS: the container\'s first process has them as 3 and up, and nothing else of tsbox\'s', async () => {
    const dir = bundle('echo "fds: $(ls /proc/self/fd | tr "\\n" " ")listen=$LISTEN_FDS pid=$LISTEN_PID" >&3; echo second >&4');
    const id = newId();
    const out = openSync(join(dir, 'pf.out'), 'w');
    const err = openSync(join(dir, 'pf.err'), 'w');
    // fds 3 and 4 of create: two pipes whose other ends this test reads.
    // LISTEN_PID names create's own pid, as systemd sets it after its fork.
    const child = spawnProcess('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, BIN, 'create', '--bundle', dir, '--preserve-fds', '1', id], {
      stdio: ['ignore', out, err, 'pipe', 'pipe'],
      env: { ...process.env, LISTEN_FDS: '1' },
    });
    closeSync(out);
    closeSync(err);
    const read = (i: number) => new Promise<string>((res) => {
      let text = '';
      (child.stdio[i] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => res(text));
    });
    const [three, four] = [read(3), read(4)];
    const code = await new Promise<number | null>((res) => child.on('exit', res));
    expect(code, readFileSync(join(dir, 'pf.err'), 'utf8')).toBe(0);
    expect((await cli(['start', id])).code).toBe(0);
    // ls's own descriptor for /proc/self/fd shows as the next one.
    expect(await three).toMatch(/^fds: 0 1 2 3 4 5 listen=1 pid=1\n$/);
    expect(await four).toBe('second\n');
    await waitFor(id, 'stopped');
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('refuses a descriptor that is not open', async () => {
    const dir = bundle('true');
    const r = await create(dir, ['--preserve-fds', '100', newId()]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--preserve-fds\): EBADF — descriptor \d+ is not open/);
  });

  it('LISTEN_FDS without LISTEN_PID naming tsbox (unset, or another process\'s) passes nothing: a host directory on fd 3 stays out', async () => {
    const dir = bundle('readlink /proc/self/fd/3 || echo no fd 3; echo "listen=$LISTEN_FDS pid=$LISTEN_PID"');
    const etc = openSync('/etc', 'r');
    try {
      for (const pid of [null, '1', 'x']) {
        const id = newId();
        const out = join(dir, `${id}.out`);
        const fds = [openSync(out, 'w'), openSync(join(dir, `${id}.err`), 'w')];
        const set = pid === null ? 'unset LISTEN_PID' : `export LISTEN_PID=${pid}`;
        const child = spawnProcess('/bin/sh', ['-c', `${set}; exec "$0" "$@"`, process.execPath, BIN, 'run', '--bundle', dir, id], {
          stdio: ['ignore', fds[0]!, fds[1]!, etc],
          env: { ...process.env, LISTEN_FDS: '1' },
        });
        for (const fd of fds) closeSync(fd);
        const code = await new Promise<number | null>((res) => child.on('exit', res));
        expect(code, readFileSync(join(dir, `${id}.err`), 'utf8')).toBe(0);
        expect(readFileSync(out, 'utf8'), `LISTEN_PID ${pid}`).toBe('no fd 3\nlisten= pid=\n');
      }
    } finally {
      closeSync(etc);
    }
  });
});

describe('pause, resume and ps', () => {
  it('pause freezes every process of the container (state says paused), resume thaws it; ps lists its processes', async () => {
    const dir = bundle('sleep 100 & while :; do echo tick >> /var/ticks; sleep 0.05; done');
    const id = await running(dir);
    const pid = (await state(id)).pid;
    const pids = JSON.parse((await cli(['ps', '--format', 'json', id])).stdout) as number[];
    expect(pids).toContain(pid);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    const table = (await cli(['ps', id])).stdout.split('\n');
    expect(table[0]).toMatch(/\bPID\b/);
    expect(table.some((l) => /sleep 100/.test(l))).toBe(true);

    expect((await cli(['pause', id])).code).toBe(0);
    expect((await state(id)).status).toBe('paused');
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^State:\s+[DS]/m);
    const frozenAt = readFileSync(join(dir, 'out/ticks'), 'utf8').length;
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(join(dir, 'out/ticks'), 'utf8').length).toBe(frozenAt);
    const twice = await cli(['pause', id]);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toContain('container not running (it is paused)');

    expect((await cli(['resume', id])).code).toBe(0);
    expect((await state(id)).status).toBe('running');
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(join(dir, 'out/ticks'), 'utf8').length).toBeGreaterThan(frozenAt);
    // delete --force of a paused container thaws it to kill it.
    expect((await cli(['pause', id])).code).toBe(0);
    expect((await cli(['delete', '--force', id])).code).toBe(0);
    expect((await cli(['state', id])).code).not.toBe(0);
  });

  it('rm -f and stop of a paused container thaw it after the signal: they end it instead of waiting on a frozen process', async () => {
    // Its PID 1 (sh) ends on SIGTERM: a PID 1 without a handler would ignore it.
    const dir = bundle('trap "exit 0" TERM; while :; do sleep 0.05; done');
    const removed = await running(dir);
    const pid = (await state(removed)).pid;
    expect((await cli(['pause', removed])).code).toBe(0);
    const rm = await cli(['rm', '-f', removed], { killAfterMs: 15_000 });
    expect(rm.signal, 'rm -f hung on the frozen container').toBeNull();
    expect(rm.code, rm.stderr).toBe(0);
    expect(alive(pid)).toBe(false);
    expect((await cli(['state', removed])).code).not.toBe(0);

    const stopped = await running(dir);
    expect((await cli(['pause', stopped])).code).toBe(0);
    const stop = await cli(['stop', '-t', '30', stopped], { killAfterMs: 15_000 });
    expect(stop.signal, 'stop hung on the frozen container').toBeNull();
    expect(stop.code, stop.stderr).toBe(0);
    // SIGTERM ended it (its trap), not the SIGKILL 30 s later.
    expect((await state(stopped)).status).toBe('stopped');
    expect((await cli(['delete', stopped])).code).toBe(0);
  });
  it('kill KILL of a paused container thaws it after the signal, as runc does: it ends rather than staying frozen with the signal pending', async () => {
    // Every process ignores SIGTERM; the child is in the cgroup too.
    const dir = bundle('trap "" TERM; sleep 100 & while :; do sleep 0.05; done');
    const id = await running(dir);
    const pid = (await state(id)).pid;
    expect((await cli(['pause', id])).code).toBe(0);
    expect((await state(id)).status).toBe('paused');
    const killed = await cli(['kill', '--all', id, 'KILL']);
    expect(killed.code, killed.stderr).toBe(0);
    await waitFor(id, 'stopped');
    expect(alive(pid)).toBe(false);
    expect((await cli(['delete', id])).code).toBe(0);
  });
});

describe('what the process of a bundle sees', () => {
  it('its args as PID 1, its ids and groups, umask, rlimits, capabilities, oom_score_adj, hostname and cwd, as config.json says', async () => {
    const script = [
      'tr "\\0" " " < /proc/1/cmdline; echo',
      'id -u; id -g; id -G; umask; ulimit -Sn; ulimit -Hn',
      'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs" /proc/self/status',
      'cat /proc/self/oom_score_adj; hostname; pwd; echo "$testa"',
    ].join('; ');
    const dir = bundle(`(${script}) > /var/seen`, (c) => {
      c.process.user = { uid: 10, gid: 10, umask: 2, additionalGids: [5] };
      c.process.rlimits = [{ type: 'RLIMIT_NOFILE', hard: 4000, soft: 3000 }];
      c.process.capabilities = { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['CAP_KILL'], inheritable: ['CAP_KILL'], permitted: ['CAP_KILL'], ambient: ['CAP_KILL'] };
      c.process.oomScoreAdj = 500;
      c.process.cwd = '/tmp';
      c.process.env.push('testa=valuea');
      c.process.noNewPrivileges = true;
    });
    // uid 10 writes there.
    chmodSync(join(dir, 'out'), 0o777);
    const id = await ranToEnd(dir);
    const seen = readFileSync(join(dir, 'out/seen'), 'utf8').split('\n');
    expect(seen.slice(0, 7)).toEqual([`sh -c (${script}) > /var/seen `, '10', '10', '10 5', '0002', '3000', '4000']);
    // CAP_KILL is bit 5 (0x20): in every set, as given; bounding also CAP_CHOWN (bit 0).
    expect(seen.slice(7, 13)).toEqual(['CapInh:\t0000000000000020', 'CapPrm:\t0000000000000020', 'CapEff:\t0000000000000020', 'CapBnd:\t0000000000000021', 'CapAmb:\t0000000000000020', 'NoNewPrivs:\t1']);
    expect(seen.slice(13, 17)).toEqual(['500', 'mrsdalloway', '/tmp', 'valuea']);
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('its domain name, personality, I/O priority and scheduling policy, as config.json says', async () => {
    // /proc/self/stat: field 19 is nice, 41 the policy (SCHED_BATCH is 3).
    const dir = bundle('(cat /proc/sys/kernel/domainname; uname -m; ionice; cut -d" " -f19,41 /proc/self/stat) > /var/seen', (c) => {
      c.domainname = 'example.org';
      c.linux.personality = { domain: 'LINUX32' };
      c.process.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 6 };
      c.process.scheduler = { policy: 'SCHED_BATCH', nice: 7 };
    });
    const id = await ranToEnd(dir);
    const machine = process.arch === 'x64' ? 'i686' : 'armv8l';
    expect(readFileSync(join(dir, 'out/seen'), 'utf8')).toBe(`example.org\n${machine}\nbest-effort: prio 6\n7 3\n`);
    expect(readFileSync('/proc/sys/kernel/domainname', 'utf8')).not.toBe('example.org\n');
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('its memory policy (linux.memoryPolicy), which its children inherit, as numa_maps shows it', async () => {
    const dir = bundle('grep -m1 " file=/bin/busybox" /proc/self/numa_maps | cut -d" " -f2 > /var/policy', (c) => {
      c.linux.memoryPolicy = { mode: 'MPOL_BIND', nodes: '0' };
    });
    const id = await ranToEnd(dir);
    expect(readFileSync(join(dir, 'out/policy'), 'utf8').trim()).toBe('bind:0');
    expect((await cli(['delete', id])).code).toBe(0);
    const bad = bundle('true', (c) => {
      c.linux.memoryPolicy = { mode: 'MPOL_BIND', nodes: '4095' };
    });
    const other = newId();
    expect((await create(bad, [other])).code).toBe(0);
    const started = await cli(['start', other]);
    expect(started.code).not.toBe(0);
    expect(started.stderr).toContain('set the memory policy (mode 2');
    await cli(['delete', '--force', other]);
  });

  it('mount options as mountinfo shows them: propagation of its own, recursive read-only, atime modes, nosymfollow', async () => {
    const data = join(scratch, `data-${serial}`);
    mkdirSync(join(data, 'sub'), { recursive: true });
    const dir = bundle('for m in /tmp/m/shared /tmp/m/unbindable /tmp/m/rro /tmp/m/rro/sub /tmp/m/noatime /tmp/m/nosymfollow; do grep " $m " /proc/self/mountinfo | cut -d" " -f5-; done > /var/mountinfo', (c) => {
      c.mounts.push(
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: [] },
        { destination: '/tmp/m/shared', type: 'tmpfs', source: 'tmpfs', options: ['rshared'] },
        { destination: '/tmp/m/unbindable', type: 'tmpfs', source: 'tmpfs', options: ['unbindable'] },
        { destination: '/tmp/m/rro', type: 'bind', source: data, options: ['rbind', 'rro'] },
        { destination: '/tmp/m/rro/sub', type: 'tmpfs', source: 'tmpfs', options: [] },
        { destination: '/tmp/m/noatime', type: 'bind', source: data, options: ['bind', 'noatime', 'nodiratime'] },
        { destination: '/tmp/m/nosymfollow', type: 'tmpfs', source: 'tmpfs', options: ['nosymfollow'] },
      );
    });
    const id = await ranToEnd(dir);
    const lines = readFileSync(join(dir, 'out/mountinfo'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(6);
    const [shared, unbindable, rro, , noatime, nosymfollow] = lines as [string, string, string, string, string, string];
    // mount point, per-mount options, optional fields (propagation), -, ...
    expect(shared).toMatch(/^\/tmp\/m\/shared \S+ shared:\d+ -/);
    expect(unbindable).toMatch(/^\/tmp\/m\/unbindable \S+ unbindable -/);
    expect(rro).toMatch(/^\/tmp\/m\/rro ro,/);
    expect(noatime).toMatch(/^\/tmp\/m\/noatime \S*noatime/);
    expect(noatime).toMatch(/nodiratime/);
    expect(nosymfollow).toMatch(/^\/tmp\/m\/nosymfollow \S*nosymfollow/);
    // Not shared with the host: the private root stays private.
    expect(rro).not.toMatch(/shared:/);
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('masked and read-only paths, a read-only root, and the default devices and /dev links', async () => {
    const script = [
      'cat /proc/kcore | wc -c',
      'ls /proc/acpi 2>/dev/null | wc -l',
      'echo 1 > /proc/sys/kernel/domainname && echo written || echo refused',
      'touch /rootfile && echo written || echo refused',
      'for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done',
      'ls /dev | tr "\\n" " "',
    ].join('; ');
    const dir = bundle(`(${script}) > /var/seen 2>/dev/null`, (c) => {
      c.linux.maskedPaths = ['/proc/kcore', '/proc/acpi', '/does/not/exist'];
      c.linux.readonlyPaths = ['/proc/sys'];
    });
    const id = await ranToEnd(dir);
    expect(readFileSync(join(dir, 'out/seen'), 'utf8')).toBe(
      ['0', '0', 'refused', 'refused', 'pts/ptmx', '/proc/self/fd', '/proc/self/fd/0', '/proc/self/fd/1', '/proc/self/fd/2', 'fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero '].join('\n'),
    );
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('without a user namespace, a device node the container makes does not open (the deny-all device rule)', async () => {
    // Regression: root with CAP_MKNOD and no user namespace must not reach a host disk through mknod.
    const disk = readFileSync('/proc/partitions', 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f.length === 4 && /^\d+$/.test(f[0]!))!;
    const dir = bundle(`mknod /dev/shm/disk b ${disk[0]} ${disk[1]} && echo made; mknod /var/disk b ${disk[0]} ${disk[1]} && echo made; head -c 512 /dev/shm/disk > /dev/null 2>&1 && echo read || echo denied; head -c 512 /var/disk > /dev/null 2>&1 && echo read || echo denied; head -c 1 /dev/zero | wc -c`, (c) => {
      c.mounts[3].options = c.mounts[3].options.filter((o: string) => o !== 'nodev');
      c.process.args[2] = `(${c.process.args[2]}) > /var/seen`;
    });
    const id = await ranToEnd(dir);
    expect(readFileSync(join(dir, 'out/seen'), 'utf8')).toBe('made\nmade\ndenied\ndenied\n1\n');
    expect((await cli(['delete', id])).code).toBe(0);
  });
});

describe('devices and sysctl', () => {
  it('linux.resources.devices goes to the container\'s v1 device cgroup, in order, before the defaults; the kernel holds them (no nodev needed)', async () => {
    const path = `/tsbox-oci-devices-${process.pid}`;
    const script = 'mknod /dev/shm/fuse c 10 229; mknod /dev/shm/mem c 1 1; (exec 3</dev/shm/fuse) 2>&1 && echo fuse:opened; (exec 3</dev/shm/mem) 2>&1; echo >&2; exec sleep 100';
    const dir = bundle(`(${script}) > /var/seen 2>&1`, (c) => {
      c.mounts[3].options = c.mounts[3].options.filter((o: string) => o !== 'nodev');
      c.linux.cgroupsPath = path;
      c.linux.resources = { devices: RUNTIME_TOOLS_DEVICE_RULES };
      // No user namespace: root with CAP_MKNOD makes the nodes; the cgroup decides what opens.
    });
    const id = await running(dir);
    const list = readFileSync(`/sys/fs/cgroup/devices${path}/devices.list`, 'utf8').trim().split('\n');
    expect(list.slice(0, 3)).toEqual(['c 10:229 rwm', 'b 8:20 rw', 'b 10:200 r']);
    expect(list).toEqual(expect.arrayContaining(['c 1:3 rwm', 'c 5:2 rwm', 'c 136:* rwm']));
    expect(list).not.toContain('a *:* rwm');
    let seen = '';
    await eventually(() => (seen = readFileSync(join(dir, 'out/seen'), 'utf8')).endsWith('\n\n'));
    // The allowed node opens (or finds no driver); the denied one is refused by the cgroup.
    expect(seen).not.toMatch(/fuse.*Operation not permitted/);
    expect(seen).toMatch(/mem.*Operation not permitted/);
    expect((await cli(['delete', '--force', id])).code).toBe(0);
    expect(existsSync(`/sys/fs/cgroup/devices${path}`)).toBe(false);
  });

  it('makes the devices of linux.devices with their mode and owner, usable beside a nodev /dev; writes namespaced sysctls', async () => {
    const script = [
      'stat -c "%F %t:%T %a %u:%g" /dev/test1 /dev/test3 /dev/mynull',
      'echo ok > /dev/mynull && echo written',
      'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax',
    ].join('; ');
    const dir = bundle(`(${script}) > /var/seen 2>&1`, (c) => {
      c.linux.devices = [
        { path: '/dev/test1', type: 'c', major: 10, minor: 666, fileMode: 0o660, uid: 0, gid: 0 },
        { path: '/dev/test3', type: 'p', fileMode: 0o640, uid: 10, gid: 20 },
        { path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o666 },
      ];
      c.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.msgmax': '4096' };
    });
    const id = await ranToEnd(dir);
    expect(readFileSync(join(dir, 'out/seen'), 'utf8')).toBe(
      ['character special file a:29a 660 0:0', 'fifo 0:0 640 10:20', 'character special file 1:3 666 0:0', 'written', '1', '4096', ''].join('\n'),
    );
    // The host's own are untouched.
    expect(readFileSync('/proc/sys/kernel/msgmax', 'utf8').trim()).not.toBe('4096');
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('an idmapped bind (idmap, ridmap) shows host root\'s files as container root\'s, and a plain one as nobody\'s; a file made there is host root\'s', async () => {
    const data = join(scratch, `idmap-${serial}`);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'file'), 'x');
    // A mount below the source: an rbind brings it, a plain bind does not (idmapped or not).
    mkdirSync(join(data, 'sub'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tsbox-test', join(data, 'sub')]);
    const dir = bundle('stat -c %u:%g /tmp/idmapped/file /tmp/plain/file > /var/seen; touch /tmp/idmapped/made; for m in /tmp/idmapped/sub /tmp/one/sub; do grep -c " $m " /proc/self/mountinfo; done >> /var/seen', (c) => {
      c.linux.namespaces.push({ type: 'user' });
      c.linux.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      c.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: [] });
      c.mounts.push({ destination: '/tmp/idmapped', type: 'bind', source: data, options: ['rbind', 'ridmap'], uidMappings: c.linux.uidMappings, gidMappings: c.linux.gidMappings });
      c.mounts.push({ destination: '/tmp/plain', type: 'bind', source: data, options: ['rbind'] });
      c.mounts.push({ destination: '/tmp/one', type: 'bind', source: data, options: ['bind', 'idmap'] });
    });
    chmodSync(join(dir, 'out'), 0o777);
    let id: string;
    try {
      id = await ranToEnd(dir);
    } finally {
      execFileSync('umount', [join(data, 'sub')]);
    }
    expect(readFileSync(join(dir, 'out/seen'), 'utf8')).toBe('0:0\n65534:65534\n1\n0\n');
    const made = statSync(join(data, 'made'));
    expect([made.uid, made.gid]).toEqual([0, 0]);
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('in a user namespace, where mknod is refused, a device is the host\'s node at the same path', async () => {
    const dir = bundle('stat -c "%F %t:%T" /dev/kmsg > /var/seen; grep -c " /dev/kmsg " /proc/self/mountinfo >> /var/seen', (c) => {
      c.linux.namespaces.push({ type: 'user' });
      c.linux.devices = [{ path: '/dev/kmsg', type: 'c', major: 1, minor: 11 }];
    });
    chmodSync(join(dir, 'out'), 0o777);
    const id = await ranToEnd(dir);
    // The host's node, bound: a mount of its own.
    expect(readFileSync(join(dir, 'out/seen'), 'utf8')).toBe('character special file 1:b\n1\n');
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('refuses a sysctl that is not a namespace\'s, and a device where another file is', async () => {
    const host = bundle('true', (c) => {
      c.linux.sysctl = { 'kernel.panic': '1' };
    });
    const r = await create(host, [newId()]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('linux.sysctl["kernel.panic"]: is not a parameter of a namespace');
    const clash = bundle('true', (c) => {
      c.linux.devices = [{ path: '/bin/sh', type: 'c', major: 1, minor: 3 }];
    });
    const id = newId();
    const d = await create(clash, [id]);
    expect(d.code).not.toBe(0);
    expect(d.stderr).toContain('device(/bin/sh): EEXIST — a different file is at the path of a device in linux.devices');
    expect((await cli(['state', id])).code).not.toBe(0);
  });
});

describe('cgroupsPath', () => {
  it('puts the container\'s cgroup exactly there, with its limits, and removes it and what it made on delete', async () => {
    const base = `/tsbox-oci-${process.pid}`;
    const dir = bundle('sleep 100', (c) => {
      c.linux.cgroupsPath = `${base}/pod/c1`;
      c.linux.resources = { ...c.linux.resources, pids: { limit: 1000 } };
    });
    const id = newId();
    const created = await create(dir, [id]);
    expect(created.code, created.stderr).toBe(0);
    const pid = (await state(id)).pid;
    const own = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    expect(own).toMatch(new RegExp(`^\\d+:pids:${base}/pod/c1$`, 'm'));
    expect(readFileSync(`/sys/fs/cgroup/pids${base}/pod/c1/pids.max`, 'utf8').trim()).toBe('1000');
    expect((await cli(['delete', '--force', id])).code).toBe(0);
    expect(existsSync(`/sys/fs/cgroup/pids${base}`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/memory${base}`)).toBe(false);
  });
});

describe('the rest of linux.resources, on this hybrid host', () => {
  it('swappiness, the OOM killer off, the TCP buffer limit (v1 memory) and a huge page limit (the unified hierarchy\'s hugetlb) are what the container\'s own cgroups say', async () => {
    const dir = bundle('(cat /sys/fs/cgroup/memory/memory.swappiness; grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control; cat /sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes /sys/fs/cgroup/unified/hugetlb.2MB.max) > /var/seen', (c) => {
      c.linux.resources = { ...c.linux.resources, memory: { limit: 50593792, swappiness: 10, disableOOMKiller: true, kernelTCP: 50593792 }, hugepageLimits: [{ pageSize: '2MB', limit: 2 * 1024 ** 3 }] };
      c.linux.namespaces.push({ type: 'cgroup' });
      c.mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
    });
    const id = await ranToEnd(dir);
    expect(readFileSync(join(dir, 'out/seen'), 'utf8').trim().split('\n')).toEqual(['10', 'oom_kill_disable 1', '50593792', String(2 * 1024 ** 3)]);
    expect((await cli(['delete', id])).code).toBe(0);
  });

  it('refuses what this host cannot carry out, naming it, and leaves nothing: net_cls (not mounted here), unified files (v2 only), an unknown page size', async () => {
    for (const [resources, message] of [
      [{ network: { classID: 255 } }, 'the net_cls controller is not mounted, and limits.networkClassId needs it'],
      [{ unified: { 'memory.high': '64M' } }, "limits.unified sets cgroup v2 files, and this host's cgroups are hybrid"],
      [{ hugepageLimits: [{ pageSize: '3MB', limit: 1 }] }, 'hugetlb.3MB.max'],
    ] as const) {
      const dir = bundle('true', (c) => {
        c.linux.resources = { ...c.linux.resources, ...resources };
      });
      const id = newId();
      const r = await create(dir, [id]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(message);
      expect((await cli(['state', id])).code).not.toBe(0);
      expect(execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '5', '-name', id]).toString()).toBe('');
    }
  });
});

describe('/sys/fs/cgroup', () => {
  it('without a cgroup namespace of its own, shows the container\'s own cgroups (bound, as runc), not the host\'s hierarchies from their root', async () => {
    const dir = bundle('(cat /sys/fs/cgroup/pids/pids.max; ls /sys/fs/cgroup/pids | grep -vc "^cgroup\\.\\|^pids\\.\\|^tasks$\\|^notify_on_release$"; touch /sys/fs/cgroup/pids/x 2>&1) > /var/seen', (c) => {
      c.linux.resources.pids = { limit: 33 };
      c.mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
    });
    const id = await ranToEnd(dir);
    const [max, others, touch] = readFileSync(join(dir, 'out/seen'), 'utf8').trim().split('\n');
    expect(max).toBe('33');
    // No child cgroup (tsbox/, the host's slices, ...), no release_agent of the root.
    expect(others).toBe('0');
    expect(touch).toMatch(/Read-only file system/);
    expect((await cli(['delete', id])).code).toBe(0);
  });
});

describe('update', () => {
  it('changes the running container\'s limits, from flags and from --resources (stdin); only those given', async () => {
    const base = `/tsbox-oci-upd-${process.pid}`;
    const dir = bundle('sleep 100', (c) => {
      c.linux.cgroupsPath = `${base}/c1`;
      c.linux.resources = { ...c.linux.resources, pids: { limit: 100 }, memory: { limit: 64 * 1024 * 1024 } };
    });
    const id = newId();
    expect((await create(dir, [id])).code).toBe(0);
    expect((await cli(['start', id])).code).toBe(0);
    const read = (ctrl: string, file: string) => readFileSync(`/sys/fs/cgroup/${ctrl}${base}/c1/${file}`, 'utf8').trim();
    const r = await cli(['update', '--memory', '128m', '--cpu-shares', '512', id]);
    expect(r.code, r.stderr).toBe(0);
    expect(read('memory', 'memory.limit_in_bytes')).toBe(String(128 * 1024 * 1024));
    expect(read('cpu', 'cpu.shares')).toBe('512');
    expect(read('pids', 'pids.max')).toBe('100');
    const s = await cli(['update', '--resources', '-', id], { input: JSON.stringify({ pids: { limit: 50 } }) });
    expect(s.code, s.stderr).toBe(0);
    expect(read('pids', 'pids.max')).toBe('50');
    expect(read('memory', 'memory.limit_in_bytes')).toBe(String(128 * 1024 * 1024));
    // checkBeforeUpdate: a limit below what it uses now (20 MB in its /dev/shm) is refused.
    const big = bundle('head -c 20000000 /dev/zero > /dev/shm/x; sleep 30', (c) => {
      c.linux.resources = { ...c.linux.resources, memory: { limit: 256 * 1024 * 1024 } };
    });
    const holder = await running(big);
    for (let i = 0; i < 100 && (JSON.parse((await cli(['events', '--stats', holder])).stdout) as { data: { memory: { usage: { usage: number } } } }).data.memory.usage.usage < 20_000_000; i++) await new Promise((r) => setTimeout(r, 50));
    const checked = await cli(['update', '--resources', '-', holder], { input: JSON.stringify({ memory: { limit: 8 * 1024 * 1024, checkBeforeUpdate: true } }) });
    expect(checked.code).not.toBe(0);
    expect(checked.stderr).toContain('resources.memory.limit: 8388608 is below the memory the container uses now');
    expect((await cli(['delete', '--force', holder])).code).toBe(0);
    const bad = await cli(['update', '--resources', '-', id], { input: JSON.stringify({ memory: { limit: 1000 } }) });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('config((stdin)): resources.memory.limit: must be at least 6m');
    // What the running cgroup does not take again is refused, not dropped.
    const fixed = await cli(['update', '--resources', '-', id], { input: JSON.stringify({ unified: { 'memory.high': '64M' }, memory: { swappiness: 10 } }) });
    expect(fixed.code).not.toBe(0);
    expect(fixed.stderr).toMatch(/resources\.(unified|memory\.swappiness): is set at create; tsbox does not change it while the container runs/);
    expect((await cli(['delete', '--force', id])).code).toBe(0);
    const stopped = await cli(['update', '--pids-limit', '5', id]);
    expect(stopped.stderr).toContain('container does not exist');
  });
});

describe('events', () => {
  it('--stats prints the usage once, in runc\'s shape; the stream prints it until the container stops', async () => {
    const dir = bundle('sleep 1', (c) => {
      c.linux.resources = { ...c.linux.resources, pids: { limit: 30 } };
    });
    const id = newId();
    expect((await create(dir, [id])).code).toBe(0);
    expect((await cli(['start', id])).code).toBe(0);
    const once = await cli(['events', '--stats', id]);
    expect(once.code, once.stderr).toBe(0);
    const e = JSON.parse(once.stdout) as { type: string; id: string; data: { pids: { current: number; limit: number }; memory: { usage: { usage: number } }; cpu: { usage: { total: number } } } };
    expect(e).toMatchObject({ type: 'stats', id, data: { pids: { current: 1, limit: 30 } } });
    expect(e.data.memory.usage.usage).toBeGreaterThan(0);
    expect(e.data.cpu.usage.total).toBeGreaterThanOrEqual(0);
    // The stream ends with the container (sleep 1).
    const stream = await cli(['events', '--interval', '200ms', id], { killAfterMs: 10_000 });
    expect(stream.code, stream.stderr).toBe(0);
    const lines = stream.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.every((l) => l.type === 'stats')).toBe(true);
    expect((await cli(['delete', id])).code).toBe(0);
  });
});

describe('namespaces', () => {
  it('joins the namespaces a path names (pid through pid_for_children), makes the rest, and refuses a path of the wrong type', async () => {
    const holder = spawnProcess('unshare', ['--net', '--ipc', '--uts', '--pid', '--fork', 'sleep', '100'], { stdio: 'ignore' });
    try {
      // The sleep inside: unshare's child, in the new namespaces.
      let inner = 0;
      for (let i = 0; i < 100 && !inner; i++) {
        try {
          inner = Number(readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, 'utf8').trim().split(/\s+/)[0] ?? 0);
        } catch {
          // Not there yet.
        }
        if (!inner) await new Promise((r) => setTimeout(r, 20));
      }
      expect(inner).toBeGreaterThan(0);
      const paths: Record<string, string> = { network: 'net', ipc: 'ipc', uts: 'uts', pid: 'pid' };
      const dir = bundle('sleep 100', (c) => {
        c.linux.namespaces = [{ type: 'mount' }, ...Object.entries(paths).map(([type, f]) => ({ type, path: `/proc/${inner}/ns/${f}` }))];
      });
      const id = newId();
      const created = await create(dir, [id]);
      expect(created.code, created.stderr).toBe(0);
      const pid = (await state(id)).pid;
      const ino = (p: number, f: string) => readlinkSync(`/proc/${p}/ns/${f}`);
      for (const f of Object.values(paths)) expect(ino(pid, f), f).toBe(ino(inner, f));
      expect(ino(pid, 'mnt')).not.toBe(ino(process.pid, 'mnt'));
      expect((await cli(['delete', '--force', id])).code).toBe(0);

      const wrong = bundle('true', (c) => {
        c.linux.namespaces = [{ type: 'mount' }, { type: 'uts' }, { type: 'network', path: `/proc/${inner}/ns/ipc` }];
      });
      const other = newId();
      const refused = await create(wrong, [other]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`join(/proc/${inner}/ns/ipc): EINVAL — is a ipc namespace, not a net namespace`);
      expect((await cli(['state', other])).code).not.toBe(0);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('time namespace', () => {
  it('gives the container its own clocks: boottime moved by timeOffsets', async () => {
    const dir = bundle('cut -d. -f1 /proc/uptime > /var/uptime; readlink /proc/self/ns/time >> /var/uptime', (c) => {
      c.linux.namespaces.push({ type: 'time' });
      c.linux.timeOffsets = { boottime: { secs: 10_000_000, nanosecs: 0 } };
    });
    const id = await ranToEnd(dir);
    const [uptime, ns] = readFileSync(join(dir, 'out/uptime'), 'utf8').trim().split('\n');
    const host = Number(readFileSync('/proc/uptime', 'utf8').split('.')[0]);
    expect(Number(uptime) - host).toBeGreaterThanOrEqual(10_000_000 - 5);
    expect(ns).not.toBe(readlinkSync('/proc/self/ns/time'));
    expect((await cli(['delete', id])).code).toBe(0);
  });
});

describe('hooks', () => {
  it('prestart and createRuntime in create, poststart in start, poststop in delete, each with the state on stdin', async () => {
    const dir = bundle('echo process >> /var/order');
    const hook = (name: string) => ({ path: '/bin/sh', args: ['sh', '-c', `cat > ${dir}/out/${name}.json; echo ${name} >> ${dir}/out/order`], timeout: 5 });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
    cfg.annotations = { 'org.example.test': 'hooks' };
    cfg.hooks = { prestart: [hook('prestart')], createRuntime: [hook('createRuntime')], poststart: [hook('poststart')], poststop: [hook('poststop')] };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const id = newId();
    expect((await create(dir, [id])).code).toBe(0);
    const pid = (await state(id)).pid;
    expect(readFileSync(join(dir, 'out/order'), 'utf8')).toBe('prestart\ncreateRuntime\n');
    expect((await cli(['start', id])).code).toBe(0);
    await waitFor(id, 'stopped');
    expect((await cli(['delete', id])).code).toBe(0);
    expect(readFileSync(join(dir, 'out/order'), 'utf8').split('\n').filter(Boolean).sort()).toEqual(['createRuntime', 'poststart', 'poststop', 'prestart', 'process']);
    const seen = (name: string) => JSON.parse(readFileSync(join(dir, `out/${name}.json`), 'utf8')) as State;
    const common = { id, bundle: dir, annotations: { 'org.example.test': 'hooks' } };
    expect(seen('prestart')).toMatchObject({ ...common, status: 'created', pid });
    expect(seen('createRuntime')).toMatchObject({ ...common, status: 'created', pid });
    expect(seen('poststart')).toMatchObject({ ...common, status: 'running', pid });
    expect(seen('poststop')).toMatchObject({ ...common, status: 'stopped' });
  });

  it('createContainer runs in the container\'s namespaces before pivot_root (its path the host\'s); startContainer in start, as the process, just before it execs (its path the container\'s)', async () => {
    const dir = bundle('echo process >> /var/order; readlink /proc/self/ns/mnt > /var/ns; readlink /proc/self/ns/uts >> /var/ns; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status > /var/status; id -u >> /var/status');
    // The process and its startContainer hook write there as uid 1000.
    chmodSync(join(dir, 'out'), 0o777);
    writeFileSync(join(dir, 'out/order'), '');
    chmodSync(join(dir, 'out/order'), 0o666);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
    cfg.annotations = { 'org.example.test': 'hooks' };
    cfg.process.user = { uid: 1000, gid: 1000 };
    cfg.process.noNewPrivileges = true;
    cfg.process.capabilities = { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] };
    cfg.hooks = {
      // It runs before pivot_root: the container's mounts still show the staging root.
      createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `echo createRuntime >> ${dir}/out/order; s=$(cat); echo "$s" > ${dir}/out/createRuntime.json; pid=$(echo "$s" | sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p'); grep -c " /tmp/root " /proc/$pid/mountinfo > ${dir}/out/cr-root`] }],
      // The host's /bin/sh and the host's path to the bundle: before pivot_root.
      createContainer: [
        { path: '/bin/sh', args: ['sh', '-c', `cat > ${dir}/out/createContainer.json; echo createContainer >> ${dir}/out/order; readlink /proc/self/ns/mnt > ${dir}/out/cc-ns; readlink /proc/self/ns/uts >> ${dir}/out/cc-ns; echo "$HOOK_ENV" > ${dir}/out/cc-env`], env: ['HOOK_ENV=given'], timeout: 5 },
        // A second one; root.path is the container's assembled root, its mounts
        // included: /var there is the bundle's out/, not the rootfs's own /var.
        { path: '/bin/sh', args: ['sh', '-c', `echo through-root > ${cfg.root.path}/var/cc-root; grep SigBlk /proc/self/status > ${dir}/out/cc-sigblk`] },
      ],
      // The container's /bin/sh and its /var: after pivot_root, as the process.
      startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'cat > /var/startContainer.json; echo startContainer >> /var/order; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status > /var/sc-status; id -u >> /var/sc-status'] }],
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const id = newId();
    const created = await create(dir, [id]);
    expect(created.code, created.stderr).toBe(0);
    const pid = (await state(id)).pid;
    // The runtime-spec's order: createRuntime (in the runtime's namespaces), then createContainer, both before pivot_root.
    expect(readFileSync(join(dir, 'out/order'), 'utf8').split('\n').filter(Boolean)).toEqual(['createRuntime', 'createContainer']);
    expect(readFileSync(join(dir, 'out/cc-env'), 'utf8')).toBe('given\n');
    expect(readFileSync(join(dir, 'out/cc-root'), 'utf8')).toBe('through-root\n');
    // No signal blocked in a hook (the helper blocks them all for itself).
    expect(readFileSync(join(dir, 'out/cc-sigblk'), 'utf8')).toMatch(/^SigBlk:\s+0+\n$/);
    const started = await cli(['start', id]);
    expect(started.code, started.stderr).toBe(0);
    await waitFor(id, 'stopped');
    expect((await cli(['delete', id])).code).toBe(0);
    // startContainer just before the process. createContainer in the
    // container's uts (and pid, net, ipc) namespaces; its mount namespace is a
    // copy of the container's with the host's /tmp uncovered (tsbox stages
    // the new root on a tmpfs there), not the host's.
    expect(readFileSync(join(dir, 'out/order'), 'utf8').split('\n').filter(Boolean).slice(-2)).toEqual(['startContainer', 'process']);
    const [mnt, uts] = readFileSync(join(dir, 'out/ns'), 'utf8').trim().split('\n');
    const [ccMnt, ccUts] = readFileSync(join(dir, 'out/cc-ns'), 'utf8').trim().split('\n');
    expect(ccUts).toBe(uts);
    expect(uts).not.toBe(readlinkSync('/proc/self/ns/uts'));
    expect([mnt, ccMnt]).not.toContain(readlinkSync('/proc/self/ns/mnt'));
    // The startContainer hook has exactly what the process has: its uid, capabilities, no_new_privs and seccomp mode.
    expect(readFileSync(join(dir, 'out/sc-status'), 'utf8')).toBe(readFileSync(join(dir, 'out/status'), 'utf8'));
    expect(readFileSync(join(dir, 'out/status'), 'utf8')).toMatch(/NoNewPrivs:\t1\n[^]*1000\n$/);
    const common = { ociVersion: cfg.ociVersion, id, bundle: dir, annotations: { 'org.example.test': 'hooks' }, pid };
    expect(JSON.parse(readFileSync(join(dir, 'out/createContainer.json'), 'utf8'))).toEqual({ ...common, status: 'creating' });
    expect(JSON.parse(readFileSync(join(dir, 'out/createRuntime.json'), 'utf8'))).toMatchObject({ ...common, status: 'created' });
    // The container had not pivoted yet: its new root was still mounted at tsbox's staging /tmp/root.
    expect(Number(readFileSync(join(dir, 'out/cr-root'), 'utf8').trim())).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(readFileSync(join(dir, 'out/startContainer.json'), 'utf8'))).toEqual({ ...common, status: 'created' });
  });

  it('a failing createContainer hook fails create and leaves nothing; a failing or missing startContainer hook fails start, and the process never runs', async () => {
    const bad = bundle('touch /var/ran', (c) => {
      c.hooks = { createContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'exit 3'] }] };
    });
    const id = newId();
    const r = await create(bad, [id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('hook(hooks.createContainer[0]): the hook /bin/sh exited with status 3');
    expect((await cli(['state', id])).code).not.toBe(0);
    expect(execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '5', '-name', id]).toString()).toBe('');

    for (const [hook, message, variant] of [
      [{ path: '/bin/false' }, 'hook(hooks.startContainer[0]): the hook /bin/false exited with status 1', ''],
      [{ path: '/no/such/hook' }, 'hook(hooks.startContainer[0]): ENOENT — execute the hook /no/such/hook', ''],
      [{ path: '/bin/sleep', args: ['sleep', '10'], timeout: 1 }, 'the hook /bin/sleep timed out after 1 s', ''],
      // The wait runs under the container's seccomp filter: one that hides pidfd_open (ENOSYS) takes the fallback, with the same outcomes.
      [{ path: '/bin/sleep', args: ['sleep', '10'], timeout: 1 }, 'the hook /bin/sleep timed out after 1 s', 'no pidfd_open'],
      [{ path: '/bin/sh', args: ['sh', '-c', 'exit 4'], timeout: 5 }, 'hook(hooks.startContainer[0]): the hook /bin/sh exited with status 4', 'no pidfd_open'],
    ] as const) {
      const dir = bundle('touch /var/ran', (c) => {
        c.hooks = { startContainer: [hook] };
        if (variant === 'no pidfd_open') c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['pidfd_open'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }] };
      });
      const other = newId();
      expect((await create(dir, [other])).code).toBe(0);
      const started = await cli(['start', other]);
      expect(started.code).not.toBe(0);
      expect(started.stderr).toContain(message);
      await waitFor(other, 'stopped');
      expect(existsSync(join(dir, 'out/ran'))).toBe(false);
      expect((await cli(['delete', other])).code).toBe(0);
    }
  });

  it('a failing prestart hook fails create and leaves no container (its poststop hooks run, as a delete would); a failing poststart or poststop hook is a warning', async () => {
    const undone = join(scratch, `undone-${serial}`);
    const bad = bundle('touch /var/ran', (c) => {
      c.hooks = { prestart: [{ path: '/bin/false' }], poststop: [{ path: '/bin/sh', args: ['sh', '-c', `cat > ${undone}`] }] };
    });
    const id = newId();
    const r = await create(bad, [id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('hook(hooks.prestart[0]): /bin/false exited with status 1');
    expect((await cli(['state', id])).code).not.toBe(0);
    expect(existsSync(join(bad, 'out/ran'))).toBe(false);
    expect(JSON.parse(readFileSync(undone, 'utf8'))).toMatchObject({ id, status: 'stopped' });

    const after = join(scratch, `after-${serial}`);
    const warned = bundle('true', (c) => {
      c.hooks = { poststart: [{ path: '/bin/false' }, { path: '/bin/sh', args: ['sh', '-c', 'echo after > "$OUT"'], env: [`OUT=${after}`] }], poststop: [{ path: '/bin/sh', args: ['sh', '-c', 'sleep 5'], timeout: 1 }] };
    });
    const other = newId();
    expect((await create(warned, [other])).code).toBe(0);
    const started = await cli(['start', other]);
    expect(started.code).toBe(0);
    expect(started.stderr).toContain('warning: hook(hooks.poststart[0]): /bin/false exited with status 1');
    expect(readFileSync(after, 'utf8')).toBe('after\n');
    await waitFor(other, 'stopped');
    const deleted = await cli(['delete', other]);
    expect(deleted.code).toBe(0);
    expect(deleted.stderr).toContain('warning: hook(hooks.poststop[0]): /bin/sh timed out after 1 s');
  });
});

describe('rootless', () => {
  const user = throwawayUser(`tsbox-oci-${process.pid}`);

  it('an ordinary user: spec --rootless maps them to root; create, start, state and delete work, and leave nothing', async () => {
    const uid = user.uid();
    const as = (args: string[], opts: Parameters<typeof cli>[1] = {}) => cli(args, { uid, gid: uid, env: { ...process.env, XDG_RUNTIME_DIR: '' }, ...opts });
    const dir = join(scratch, 'rootless');
    mkdirSync(dir);
    chownSync(dir, uid, uid);
    expect((await as(['spec', '--rootless'], { cwd: dir })).code).toBe(0);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
    expect(cfg.linux.uidMappings).toEqual([{ containerID: 0, hostID: uid, size: 1 }]);
    cfg.root.path = rootfs;
    cfg.process.terminal = false;
    cfg.process.args = ['sh', '-c', 'id -u; cat /proc/self/uid_map'];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const id = `rootless-${process.pid}`;
    try {
      const created = await withFiles(dir, ['create', '--bundle', dir, id], 'rootless-create', { uid, gid: uid, env: { ...process.env, XDG_RUNTIME_DIR: '' } });
      expect(created.code, created.stderr).toBe(0);
      expect((await as(['start', id])).code).toBe(0);
      let status = '';
      for (let i = 0; i < 100 && status !== 'stopped'; i++) {
        status = (JSON.parse((await as(['state', id])).stdout) as State).status;
        if (status !== 'stopped') await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe('stopped');
      // create's stdout is the container's: root inside, the user outside.
      const out = readFileSync(join(dir, 'rootless-create.out'), 'utf8');
      expect(out.split('\n')[0]).toBe('0');
      expect(out).toMatch(new RegExp(`^\\s+0\\s+${uid}\\s+1$`, 'm'));
      expect((await as(['delete', id])).code).toBe(0);
      expect((await as(['list', '-q'])).stdout).toBe('');
      expect(existsSync(join(tmpdir(), `tsbox-state-${uid}`))).toBe(false);
    } finally {
      await as(['delete', '--force', id]);
    }
  });
});

describe('the command line of runc\'s callers', () => {
  it('--root keeps the state where it says; --log --log-format json gets each error as a JSON line', async () => {
    const root = join(scratch, 'root');
    const log = join(scratch, 'log.json');
    const global = ['--root', root, '--log', log, '--log-format=json'];
    const dir = bundle('true');
    const id = newId();
    const created = await create(dir, [id], global);
    expect(created.code, created.stderr).toBe(0);
    expect((await state(id, global)).status).toBe('created');
    // Not in the default root.
    expect((await cli(['state', id])).code).not.toBe(0);
    const refused = await cli([...global, 'delete', id]);
    expect(refused.code).not.toBe(0);
    const line = JSON.parse(readFileSync(log, 'utf8').trim().split('\n').pop()!) as { level: string; msg: string; time: string };
    expect(line).toMatchObject({ level: 'error', msg: expect.stringContaining(`cannot delete container ${id} that is not stopped`) });
    expect(Date.parse(line.time)).not.toBeNaN();
    // Its container's state directory; its cgroup marker is the host's
    // (/run/tsbox/cgroups), where every root's gc sees it.
    expect(readdirSync(root).filter((n) => /^[0-9a-f]{64}$/.test(n))).toHaveLength(1);
    expect(readdirSync(root)).not.toContain('cgroups');
    expect((await cli([...global, 'delete', '--force', id])).code).toBe(0);
    expect((await cli([...global, 'list', '-q'])).stdout).toBe('');
  });

  it('run: --detach leaves it running; in the foreground its status is run\'s, and --keep keeps it stopped', async () => {
    const dir = bundle('echo ran; exit 7');
    const kept = newId();
    const fg = await withFiles(dir, ['run', '--keep', '--bundle', dir, kept], 'run-fg');
    expect(fg.code, fg.stderr).toBe(7);
    expect(fg.stdout).toBe('ran\n');
    expect((await state(kept)).status).toBe('stopped');
    expect((await cli(['delete', kept])).code).toBe(0);
    const bg = newId();
    const sleeper = bundle('sleep 100');
    const d = await withFiles(sleeper, ['run', '-d', '-b', sleeper, bg], 'run-bg');
    expect(d.code, d.stderr).toBe(0);
    expect((await state(bg)).status).toBe('running');
    expect((await cli(['delete', '--force', bg])).code).toBe(0);
  });

  it('a config error names config.json and the JSON path, exits non-zero, and leaves nothing', async () => {
    const dir = bundle('true', (c) => {
      c.process.capabilities.bounding.push('CAP_TEST');
      c.process.rlimits.push({ type: 'RLIMIT_TEST', hard: 1, soft: 1 });
    });
    const id = newId();
    const r = await create(dir, [id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${join(dir, 'config.json')}): process.capabilities.bounding[14]: unknown capability "CAP_TEST"`);
    expect(r.stderr).toContain('process.rlimits[1].type: unknown rlimit "RLIMIT_TEST"');
    expect((await cli(['state', id])).code).not.toBe(0);
  });

  it('spec writes a config that create and start run, from a busybox rootfs; features lists what is supported', async () => {
    const dir = join(scratch, 'spec');
    mkdirSync(dir);
    const spec = await cli(['spec', '--bundle', dir]);
    expect(spec.code, spec.stderr).toBe(0);
    expect((await cli(['spec', '--bundle', dir])).stderr).toContain('config.json exists');
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
    expect(cfg.process.terminal).toBe(true);
    cfg.root.path = rootfs;
    // Run below with `tsbox run ID`, foreground, its terminal ours; create needs a console socket for it.
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const fg = await cli(['run', '--bundle', '.', 'fg-' + newId()], { cwd: dir, input: 'tty; id -u; hostname; exit 3\n' });
    expect(fg.code, fg.stderr).toBe(3);
    expect(fg.stdout.split(/\r?\n/)).toEqual(expect.arrayContaining(['/dev/pts/0', '0', 'tsbox']));
    // Deleted at its end (no --keep).
    expect((await cli(['list', '-q'])).stdout).not.toContain('fg-');
    cfg.process.terminal = false;
    cfg.process.args = ['sh', '-c', 'id -u; hostname; cat /proc/self/uid_map'];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const id = await ranToEnd(dir);
    expect((await cli(['delete', id])).code).toBe(0);
    const out = readFileSync(join(dir, `create-${serial}.out`), 'utf8');
    // Root in its own user namespace, mapped to tsbox's range (not host root).
    expect(out).toMatch(/^0\ntsbox\n\s+0\s+\d+\s+65536\n$/);
    expect(out).not.toMatch(/\s+0\s+0\s+/);
    const features = JSON.parse((await cli(['features'])).stdout) as { ociVersionMax: string; hooks: string[]; mountOptions: string[]; linux: { namespaces: string[]; seccomp: { actions: string[] }; mountExtensions: { idmap: { enabled: boolean } } } };
    expect(features.ociVersionMax).toBe('1.2.0');
    expect(features.linux.namespaces).toContain('user');
    expect(features.hooks).toEqual(['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);
    expect(features.mountOptions).toEqual(expect.arrayContaining(['rshared', 'rro', 'idmap', 'nosymfollow']));
    expect(features.linux.seccomp.actions).toContain('SCMP_ACT_NOTIFY');
    expect(features.linux.mountExtensions.idmap.enabled).toBe(true);
  });

  it('--systemd-cgroup where systemd is not PID 1 (this host) is refused with why, and leaves nothing; without it, slice:prefix:name names the flag', async () => {
    expect(existsSync('/run/systemd/system')).toBe(false);
    const dir = join(scratch, 'systemd');
    mkdirSync(dir);
    const config = runtimeToolsConfig(rootfs, ['true']);
    config.linux.cgroupsPath = 'system.slice:tsbox:c1';
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const id = `sd-${newId()}`;
    const r = await cli(['--systemd-cgroup', 'create', '--bundle', dir, id]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: config\(--systemd-cgroup\): EOPNOTSUPP — systemd is not PID 1 on this machine/);
    expect((await cli(['state', id])).code).not.toBe(0);
    const plain = await cli(['create', '--bundle', dir, id]);
    expect(plain.code).toBe(125);
    expect(plain.stderr).toContain("linux.cgroupsPath: is systemd's slice:prefix:name, which is for the systemd cgroup driver: pass --systemd-cgroup");
    expect((await cli(['list', '-q'])).stdout).not.toContain(id);
  });

  it("--root another user may write is refused for every command, reads too: a state.json planted there does not run its hooks as root; a container's directory that is a symlink is not followed", async () => {
    const mark = join(scratch, 'planted-hook-ran');
    const hex = 'c'.repeat(64);
    /** A stopped OCI container named web in `dir`, as someone else wrote it: its poststop hook leaves `mark`, its log is /etc/shadow. */
    const plant = (dir: string) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'state.json'), JSON.stringify({
        ociVersion: '1.2.0', id: hex, name: 'web', oci: true, status: 'stopped', pid: 0, bundle: '/', annotations: {}, created: new Date().toISOString(),
        monitorPid: 0, callerPid: 0, detached: true, command: ['true'], options: {}, log: '/etc/shadow',
        hooks: { poststop: [{ path: '/bin/sh', args: ['sh', '-c', `touch ${mark}`] }] },
      }));
      writeFileSync(join(dir, 'config.json'), 'kept');
    };
    // The reviewer's: a directory of nobody's, open to all, given as --root.
    const planted = join(scratch, 'planted-root');
    mkdirSync(planted);
    plant(join(planted, hex));
    for (const p of [planted, join(planted, hex)]) {
      chownSync(p, 65534, 65534);
      chmodSync(p, 0o777);
    }
    for (const cmd of [['delete', 'web'], ['delete', '--force', 'web'], ['state', 'web'], ['logs', 'web'], ['kill', 'web', 'KILL'], ['list', '-q']]) {
      const r = await cli(['--root', planted, ...cmd]);
      expect(r.code, cmd.join(' ')).not.toBe(0);
      expect(r.stderr, cmd.join(' ')).toMatch(new RegExp(`^tsbox: state\\(${planted}\\): EPERM — the state directory belongs to uid 65534, not to this user \\(0\\); --root must name a directory of your own`));
      expect(r.stdout).toBe('');
    }
    expect(existsSync(mark)).toBe(false);
    expect(readdirSync(join(planted, hex)).sort()).toEqual(['config.json', 'state.json']);
    // Root's own --root, with a symlink in place of a container's directory: not followed.
    const linked = join(scratch, 'linked-root');
    mkdirSync(linked, { mode: 0o700 });
    plant(join(scratch, 'elsewhere'));
    symlinkSync(join(scratch, 'elsewhere'), join(linked, hex));
    const deleted = await cli(['--root', linked, 'delete', 'web']);
    expect(deleted.code).not.toBe(0);
    expect(deleted.stderr).toMatch(/^tsbox: state\(web\): ENOENT — container does not exist/);
    expect((await cli(['--root', linked, 'list', '-q'])).stdout).toBe('');
    expect(existsSync(mark)).toBe(false);
    expect(readdirSync(join(scratch, 'elsewhere')).sort()).toEqual(['config.json', 'state.json']);
  });

  it('spec refuses a config.json that is a symlink, dangling too, and makes nothing where it points', async () => {
    const dir = join(scratch, 'spec-link');
    mkdirSync(dir);
    const target = join(scratch, 'spec-link-target');
    symlinkSync(target, join(dir, 'config.json'));
    const r = await cli(['spec', '--bundle', dir]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`tsbox: config(${join(dir, 'config.json')}): EEXIST — config.json exists; remove it first\n`);
    expect(existsSync(target)).toBe(false);
    expect(lstatSync(join(dir, 'config.json')).isSymbolicLink()).toBe(true);
    // A directory it may not write in: one line naming the file, not a stack.
    const missing = await cli(['spec', '--bundle', join(scratch, 'spec-no-such-dir')]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toMatch(/^tsbox: config\(.*spec-no-such-dir\/config\.json\): ENOENT — write config\.json .*; give --bundle a directory you may write\n$/);
  });
});
