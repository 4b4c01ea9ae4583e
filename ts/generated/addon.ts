// Generated from crates/tsbox-napi by napi-rs (native/index.d.ts) with `npm run generate`; do not edit.
/* eslint-disable */

/** The Node end of a launch channel. Messages are JSON strings, one per packet. */
export declare class Channel {
  /**
   * Creates the socketpair: this object keeps the non-blocking parent end;
   * `childFd` is to be passed to tsbox-init as its fd 3 and then released
   * with `closeChild`.
   */
  constructor()
  /**
   * A channel connected to the control socket at `path` (a running
   * container's monitor).
   */
  static connect(path: string): Channel
  /** The descriptor for the helper's fd 3, or -1 once released. */
  get childFd(): number
  /**
   * Closes this process's copy of the helper's end (after spawning it, or
   * when the spawn failed).
   */
  closeChild(): void
  /** Sends one message (framed by tsbox_core::wire, as the helper reads it). */
  send(msg: string): void
  /**
   * Sends one message with descriptors of this process attached
   * (SCM_RIGHTS); they stay open here.
   */
  sendFds(msg: string, fds: Array<number>): void
  /**
   * The next message, or null once the other end has closed. Rejects
   * with "cancelled" when `cancelRecv` is called after this call and
   * before a message comes (the message then stays for the next call).
   */
  recv(): Promise<string | null>
  /**
   * Makes a pending `recv` reject with "cancelled", so that its promise
   * stops holding Node's event loop (Container.unref()); nothing when
   * none is pending.
   */
  cancelRecv(): void
  /**
   * As `recv`, but calls `callback(err, msg)` instead of returning a
   * promise, and does not hold Node's event loop open while it waits: what
   * waits for the message decides that (a Container's keep-alive, which
   * `unref()` releases).
   */
  recvWeak(callback: (err: Error | null, msg: string | null) => void): void
  /**
   * The oldest descriptor that came with a message (a pty master), now the
   * caller's to close; -1 when none is waiting.
   */
  takeFd(): number
  /** Closes this end. A pending `recv` resolves to null. */
  close(): void
}

/** A held lock; `release()` (or garbage collection) unlocks and closes it. */
export declare class FileLock {
  get path(): string
  /**
   * The lock's descriptor, to hand to another process (SCM_RIGHTS): the
   * lock is held until every copy is closed. -1 once released.
   */
  get fd(): number
  /**
   * Closes this process's copy without removing the file: another process
   * (a detached container's monitor) holds the lock from now on.
   */
  forget(): void
  /**
   * Unlocks and leaves the lock file, emptied of its note, for the next
   * holder: for locks taken again and again (the id allocator, a block of
   * ids). Removing a file that held data costs its final close the
   * filesystem's eviction of its blocks: 3-7 ms on ext4 with delayed
   * allocation (a /run that is not tmpfs), measured, against microseconds
   * for a truncate of a file that stays.
   */
  unlock(): void
  /** Unlocks and removes the lock file. */
  release(): void
}

/** A tsbox-init being started, then running. */
export declare class HelperProcess {
  /**
   * The helper's pid once posix_spawn has returned (waiting for it if it
   * has not yet), or its error: `start PATH: ...` when tsbox-init could not
   * be started.
   */
  started(): number
  /**
   * Our end of the pipe for stdio `index` (0, 1, 2), now the caller's to
   * close; -1 when that stream was not piped or was taken already.
   */
  takePipe(index: number): number
  /**
   * Calls `callback(err, exit)` once the helper has exited, and reaps it.
   * A helper whose start failed "exits" with 127, as a shell reports a
   * command it could not run (`started()` gives the reason).
   * It does not hold Node's event loop open while it waits: the launch,
   * then the Container's keep-alive do, until `unref()`.
   */
  waitWeak(callback: (err: Error | null, exit: HelperExit) => void): void
}

/** The NFLOG group of one container's refused packets, bound by this reader. */
export declare class NflogReader {
  /**
   * Binds a free group of `first .. first+count-1` (tried from a random
   * one on, the next when another socket has it).
   */
  static bind(first: number, count: number): NflogReader
  /**
   * As `bind`, in the network namespace `netns` (owned by the user
   * namespace `userns`, which this process's user owns): an ordinary
   * user's container, whose rules are in its own namespace.
   */
  static bindIn(userns: string, netns: string, first: number, count: number): NflogReader
  get group(): number
  /**
   * Calls `callback()` each time packets may be waiting (then `drain()`
   * reads them), until `close()`. Does not hold Node's event loop open.
   */
  watch(callback: () => void): void
  /**
   * The refused packets waiting, at most `max` messages' worth; empty
   * once closed.
   */
  drain(max: number): Array<RefusedPacket>
  /**
   * Unbinds the group and closes the socket: by the time it returns (the
   * watch, told to stop, lets go of it within moments; a bound of 200 ms
   * all the same, after which the watch closes it as it ends). Anything
   * not drained is dropped.
   */
  close(): void
}

/**
 * Builds the device program for `rules` (the v1 device cgroup's writes, in
 * order), loads it and attaches it to the cgroup v2 directory `cgroup`.
 * Returns null when it is in place, else what failed (nothing is left
 * attached then: the caller removes the cgroup).
 */
export declare function attachDeviceFilter(cgroup: string, rules: Array<DeviceRuleWrite>): DeviceFilterFailure | null

/**
 * Compiles an OCI `linux.seccomp` profile (JSON text; null for tsbox's
 * default profile) for this machine's architecture, and returns the BPF
 * program as raw `struct sock_filter` bytes. `agent`: whether the container
 * hands a seccomp agent the listener of SCMP_ACT_NOTIFY rules (an OCI
 * bundle's; default true); without one each such rule is a problem. A bad
 * profile throws an error naming the JSON path of each problem (its message
 * is the problems themselves, for a caller with no other words for them).
 */
export declare function compileSeccomp(profileJson?: string | undefined | null, agent?: boolean | undefined | null): Buffer

/**
 * Detaches tsbox's device programs (by their name) from the cgroup v2
 * directory `cgroup`, which stays: the teardown of a joined cgroupsPath.
 * Other programs on it are left. A cgroup that is gone has none. Returns
 * null when none is left, else what failed.
 */
export declare function detachDeviceFilter(cgroup: string): DeviceFilterFailure | null

/**
 * Why the filter could not be put in place: the call that failed, its
 * errno (0 for rules that cannot be carried out: no call failed), and what
 * happened (the verifier's log, when it refused the program).
 */
export interface DeviceFilterFailure {
  call: string
  errno: number
  detail: string
}

/**
 * One write of the rules, as ts/cgroups's DeviceRuleWrite: `devices.allow`
 * or `devices.deny`, and `a` or `c 1:3 rwm`.
 */
export interface DeviceRuleWrite {
  file: string
  value: string
}

/**
 * Applies image layer directories (bottom first) into the existing empty
 * directory `dest`, as overlayfs would show them (whiteouts, opaque
 * directories), keeping each layer's hard links and holes, off the main
 * thread; resolves with the number of entries.
 * Rejects with a JSON report `{ errno, path, detail, hint }`.
 */
export declare function flattenLayers(layers: Array<string>, dest: string, more?: FlattenLimits | undefined | null): Promise<number>

/**
 * Limits `flattenLayers` otherwise takes from the defaults (tests set them
 * to reach them cheaply).
 */
export interface FlattenLimits {
  /** Most bytes of file data the export writes (default 256 GiB). */
  maxBytes?: number
  /** Bytes the filesystem keeps free (default 1 GiB, or a twentieth of a smaller one). */
  minFreeBytes?: number
}

/** How the exited helper ended. */
export interface HelperExit {
  code?: number
  signal?: number
}

/**
 * lstat of each path, null where it fails (missing, or not readable). One
 * call for the image store's checks on a launch: the first `fs.lstatSync`
 * calls of a process cost ~0.3 ms, most of `tsbox run IMAGE`'s look-up.
 */
export declare function lstatMany(paths: Array<string>): Array<PathOwner | undefined | null>

/**
 * CLOCK_MONOTONIC in nanoseconds, the clock `--trace` offsets count from (the
 * same clock as process.hrtime, exposed so both sides agree by construction).
 */
export declare function monotonicNs(): bigint

/**
 * What `lstatMany` says of a path: its owner, its mode bits (permissions,
 * setuid, setgid, sticky) and whether it is a directory (never a symlink's
 * target: the path itself).
 */
export interface PathOwner {
  uid: number
  mode: number
  isDirectory: boolean
}

/**
 * pidfd_open(2): a descriptor for the process numbered `pid` now, which
 * keeps naming that process after it has exited and its number has gone to
 * another (Linux 5.3). Close-on-exec; the caller closes it (fs.closeSync).
 * Returns the descriptor, or -errno (-ESRCH: no process has that number).
 *
 * The v1 teardown kills what is left in a cgroup by its pids, read from
 * cgroup.procs: with a pidfd opened first and the cgroup listed again after,
 * a pid still listed is the process the pidfd holds (or that process has
 * exited, and the signal finds nothing), never a stranger that took the
 * number meanwhile.
 */
export declare function pidfdOpen(pid: number): number

/**
 * pidfd_send_signal(2): sends signal `signal` to the process `pidfd` holds
 * (from `pidfdOpen`). Returns 0, or -errno (-ESRCH: it has exited).
 */
export declare function pidfdSendSignal(pidfd: number, signal: number): number

/** A pipe, both ends close-on-exec: `[read, write]`, the caller's to close. */
export declare function pipe(): Array<number>

/** The plan format version this addon's tsbox-init speaks. */
export declare const PLAN_VERSION: number

/**
 * Writes this process's pid to `procs` (a cgroup.procs of the cgroup it is
 * in) on a short-lived thread; returns at once. Errors are ignored: this
 * only saves time.
 */
export declare function prewarmCgroupMove(procs: string): void

/** A refused packet as Node sees it. */
export interface RefusedPacket {
  /** The IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...). */
  protocol: number
  address: string
  /** The TCP or UDP destination port, when copied. */
  port?: number
  /** The ICMP type, for ICMP. */
  icmpType?: number
}

/**
 * Puts the terminal on `fd` back as `saveTerminal` found it, and out of
 * exclusive mode (TIOCEXCL, which would keep its owner from opening it).
 * A container given the caller's terminal (without `-t`) may have changed
 * both; best effort, as the terminal may be gone.
 */
export declare function restoreTerminal(fd: number, saved: Buffer): void

/**
 * The termios of the terminal on `fd`, to give back with `restoreTerminal`
 * after a container that shared it has ended; null when `fd` is not a
 * terminal.
 */
export declare function saveTerminal(fd: number): Buffer | null

/**
 * tsbox's default profile as OCI JSON, for users to dump, edit and pass back
 * with `--security-opt seccomp=PATH`.
 */
export declare function seccompDefaultProfile(): string

/**
 * One problem of a seccomp profile: the JSON path of the value at fault
 * (`syscalls[3].names[1]`, `(profile)` for the whole) and what is wrong.
 */
export interface SeccompProblem {
  path: string
  message: string
}

/**
 * Every problem of an OCI `linux.seccomp` profile (JSON text) for this
 * machine, from the one validator (tsbox_core::seccomp::problems); empty
 * when `compileSeccomp` would take it (with the same `agent`).
 */
export declare function seccompProblems(profileJson: string, agent?: boolean | undefined | null): Array<SeccompProblem>

/**
 * An OCI bundle's profile taken as runc takes it (tsbox_core's
 * `seccomp::relax`): names of no system call left out, and one action per
 * call, the one the kernel ranks first. Returns the profile's JSON.
 */
export declare function seccompRelax(profileJson: string): string

/**
 * Sends the terminal master `fd` to the Unix stream socket at `path`, as an
 * OCI runtime's `--console-socket` takes it (runc's protocol, which conmon
 * and containerd speak): one message, the text `name`, with the descriptor
 * in SCM_RIGHTS.
 */
export declare function sendConsole(path: string, fd: number, name: string): void

/**
 * Sets the size of the terminal whose master is `fd` (a container's tty); the
 * kernel sends SIGWINCH to its foreground process group.
 */
export declare function setWindowSize(fd: number, cols: number, rows: number): void

/**
 * What `unpackLayer` resolves with.
 * `sha256:<hex>` of `data`: the store's check of a manifest or config it
 * reads back, without loading node:crypto on the launch path of an image.
 */
export declare function sha256Digest(data: Buffer): string

/**
 * Starts `path` (tsbox-init) with `stdio` ("inherit", "pipe", "ignore" or
 * "fd:N" for stdin, stdout, stderr), `channel_fd` as its fd 3, and
 * `preserved` (an OCI runtime's --preserve-fds and LISTEN_FDS) as its fds 4
 * and up, for the container's first process to have as 3 and up. With
 * `exec`, it starts one process in a running container instead
 * (`tsbox-init --exec`).
 *
 * Everything that can be wrong with the arguments is reported here; the
 * posix_spawn itself runs on another thread, and `started()` gives its pid
 * or its error. The caller's descriptors are copied first: it may close them
 * when this returns.
 */
export declare function spawnHelper(path: string, stdio: Array<string>, channelFd: number, preserved?: Array<number> | undefined | null, exec?: boolean | undefined | null): HelperProcess

/**
 * Takes an exclusive lock on `path` without waiting, creating it (mode 0644)
 * with `note` as its contents; null when another process holds it.
 */
export declare function tryLockFile(path: string, note: string): FileLock | null

/**
 * Takes a shared lock on `path` without waiting, creating it (mode 0644,
 * empty): any number of holders at once, none while an exclusive one
 * holds it (the image store's launches against its prune). Null when an
 * exclusive holder has it. Release it with `unlock()`: the file stays,
 * and nothing is written to it (its holders share it).
 */
export declare function tryLockFileShared(path: string): FileLock | null

export interface UnpackedLayer {
  entries: number
  bytes: number
  /** `sha256:<hex>` of the uncompressed tar: the layer's diff_id. */
  diffId: string
  /** What was left out or changed (device nodes, setuid bits, xattrs), once each. */
  notes: Array<string>
}

/**
 * Unpacks the layer blob at `archive` (gzip, zstd or plain tar) into the
 * existing empty directory `dest`, off the main thread (libuv's pool).
 * Rejects with a JSON report `{ errno, path, detail, hint }`.
 */
export declare function unpackLayer(archive: string, dest: string, maxBytes: number, maxEntries: number, more?: UnpackLimits | undefined | null): Promise<UnpackedLayer>

/**
 * Limits `unpackLayer` otherwise takes from the defaults (tests set them to
 * reach them cheaply).
 */
export interface UnpackLimits {
  /**
   * Most bytes the layer's directories take in memory until their modes
   * are set (default 64 MiB).
   */
  maxDirBytes?: number
  /** Bytes the filesystem keeps free (default 1 GiB, or a twentieth of a smaller one). */
  minFreeBytes?: number
}

/**
 * As `tryLockFile`, but waits for the lock (a short critical section such as
 * the id allocator's scan); never null.
 */
export declare function waitLockFile(path: string, note: string): FileLock
