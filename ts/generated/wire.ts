// Generated from crates/tsbox-core/src/{plan,message,report}.rs by `npm run generate`; do not edit.
// The wire types of the launch channel and the control socket: Rust's serde
// types are the one definition, declared here by ts-rs.

export type SandboxPlan = { version: number, hostname: string, namespaces: Array<Namespace>, rootfs: RootfsSpec, 
/**
 * Propagation of the container's mounts once it runs (OCI `rootfsPropagation`).
 */
rootfsPropagation: Propagation, 
/**
 * Bytes the container may write outside its volumes: the size of the
 * staging tmpfs that holds the overlay's upper layer and the scratch
 * directories. None leaves the kernel's default (half of RAM).
 */
storageSize: number | null, 
/**
 * Applied in order after the root is bound; targets are container paths.
 */
mounts: Array<Mount>, 
/**
 * PID 1 is tsbox's minimal init (forwards signals, reaps, exits with the
 * command's status). False makes the process PID 1.
 */
init: boolean, 
/**
 * Phase `maps`: who writes the id maps.
 */
maps: MapsPhase, 
/**
 * Phase `cgroup`: how the child gets into its cgroup.
 */
cgroup: CgroupPhase, 
/**
 * Directories of the cgroup that existed before the container (a
 * joined OCI cgroupsPath): kept when it ends, never removed by the
 * monitor.
 */
cgroupKept?: Array<string>, 
/**
 * The cgroup files whose contents the result reports (peak memory, OOM
 * kills, peak pids, throttling), in Node's order: the monitor reads
 * them once the command has ended, while PID 1 exits, and sends them
 * with `exited`.
 */
usageFiles?: Array<string>, 
/**
 * A pool's sandbox: the process it most likely gets (the pool's, with
 * no command), forked and prepared while the sandbox waits. A process
 * that differs from it only in argv and env becomes that one; any
 * other is prepared as usual.
 */
expectedProcess?: ProcessPlan, 
/**
 * Phase `network`: who sets up the network namespace.
 */
network: NetworkPhase, 
/**
 * Print every setup step with its time offset to stderr.
 */
trace: boolean, 
/**
 * CLOCK_MONOTONIC time, in ns, that trace offsets count from.
 */
traceT0Ns: number, 
/**
 * The pid that spawned the helper.
 */
parentPid: number, 
/**
 * The monitor leaves its caller's process tree and outlives it, keeping
 * the container (`run -d`, OCI `create`); otherwise the container dies
 * with its caller.
 */
detach: boolean, 
/**
 * Where the monitor serves its control socket (exec, signals, wait):
 * `control.sock` in the container's state directory.
 */
control: string | null, 
/**
 * Namespaces of `namespaces` that are joined (an OCI namespace `path`)
 * rather than new: the helper enters each before it clones.
 */
join: Array<JoinedNamespace>, 
/**
 * Kernel parameters of the container's own namespaces (OCI
 * `linux.sysctl`), written by the child before it mounts anything.
 * Node lets through only namespaced ones.
 */
sysctl: Array<Sysctl>, 
/**
 * A console made with the sandbox, before its process (an OCI bundle
 * with `process.terminal`, whose master goes to `--console-socket` at
 * create): a pty of the container's devpts, its slave bound on
 * /dev/console, its master sent to Node. The process's `tty` then takes
 * this pty instead of making one.
 */
console: TtySize | null, 
/**
 * A time namespace of its own with these clock offsets (OCI `time`
 * and `linux.timeOffsets`): the helper unshares it for its children
 * and writes the offsets before the container enters it.
 */
time: TimeOffsets | null, 
/**
 * The NIS domain name, in the container's own uts namespace (OCI `domainname`).
 */
domainname: string | null, 
/**
 * The container's first process is a child of the monitor's parent
 * (CLONE_PARENT), not of the monitor: as a runc container is of its
 * caller's subreaper (conmon, containerd's shim), which waits for it and
 * has its exit status. The monitor follows it by its pidfd.
 */
reparent: boolean, 
/**
 * OCI `createContainer` hooks: run by the child in the container's
 * namespaces once its mounts are made, before pivot_root (their paths
 * are the host's), each with the state on its stdin.
 */
createContainerHooks: Hooks | null, 
/**
 * Node runs the OCI `prestart` and `createRuntime` hooks once the
 * container is cloned, and the child waits for them (`hooked`) after its
 * mounts and before its createContainer hooks and pivot_root, as the
 * runtime-spec orders them.
 */
runtimeHooks: boolean, 
/**
 * OCI `linux.seccomp.listenerPath`: the seccomp agent's Unix socket,
 * connected to with the caller's credentials before pivot_root; the
 * process sends its filter's notification descriptor there.
 */
seccompListener: string | null, 
/**
 * A detached container's stdout and stderr go through a pipe that the
 * monitor copies to its log (the helper's stdout), at most this many
 * bytes per file, the full one kept as `container.log.1`: /run is
 * memory. None: the container writes the log itself, without limit.
 */
logMaxSize?: number, };

export type Namespace = "user" | "pid" | "mount" | "net" | "ipc" | "uts" | "cgroup";

export type JoinedNamespace = { ns: Namespace, path: string, };

export type Sysctl = { key: string, value: string, };

export type DeviceNode = "char" | "block" | "fifo";

export type TimeOffsets = { monotonic: ClockOffset | null, boottime: ClockOffset | null, };

export type ClockOffset = { secs: number, nanosecs: number, };

export type Hooks = { hooks: Array<Hook>, 
/**
 * The runtime-spec state as JSON; the child sets its `pid` (the
 * container's, as the host sees it) before a hook reads it.
 */
state: string, };

export type Hook = { path: string, args: Array<string>, env: Array<string>, timeout: number | null, };

export type MountPropagation = { kind: Propagation, recursive: boolean, };

export type MemoryPolicy = { mode: number, flags: number, nodes: Array<number>, };

export type SeccompAgent = { metadata: string, state: string, 
/**
 * An exec'd process's own connection: the agent's socket, connected to
 * before the process joins the container's mount namespace (the first
 * process connects while its sandbox is built: `SandboxPlan::seccomp_listener`).
 */
connect: string | null, };

export type IoPriority = { class: number, priority: number, };

export type Scheduler = { policy: number, flags: number, nice: number, priority: number, runtime: number, deadline: number, period: number, };

export type RootfsSpec = { "kind": "path", path: string, mode: RootMode, 
/**
 * Shift the rootfs's ids into the container's range with an idmapped
 * mount (made by the helper, which has the privilege for it).
 */
idmap: boolean, 
/**
 * Device nodes on the root do not open (MOUNT_ATTR_NODEV): how an
 * OCI bundle's deny-all device rule holds for a container that may
 * mknod outside a user namespace.
 */
nodev?: boolean, 
/**
 * An image's lower layers under `path` (its top layer), top first:
 * more read-only lower directories of the overlay, each idmapped as
 * the rootfs is. Only with the overlay or read-only modes.
 */
layers?: Array<string>, };

export type RootMode = "overlay" | "readonly" | "bind";

export type Propagation = "private" | "slave" | "shared" | "unbindable";

export type Mount = { 
/**
 * Absolute path inside the container.
 */
target: string, readonly?: boolean, nosuid?: boolean, nodev?: boolean, noexec?: boolean, 
/**
 * Skip, rather than fail, when the mount point is missing and cannot be
 * created (a read-only root, or a directory the container may not write).
 */
optional?: boolean, 
/**
 * More MS_* flags for a fresh filesystem (`fs`), as an OCI mount's
 * options give them: the atime ones, sync, dirsync, lazytime, silent.
 */
flags?: number, 
/**
 * The mount's own propagation (an OCI mount's `shared`, `rslave`, ...),
 * set once the root has its own (rootfsPropagation), so it stands.
 */
propagation?: MountPropagation, } & ({ "type": "bind", source: string, recursive: boolean, 
/**
 * Shift the source's ids into the container's range (idmapped mount).
 */
idmap?: boolean, 
/**
 * Not nodev after all when what the source opened as is itself a
 * character or block device: a volume naming a device (`-v
 * /dev/kvm:/dev/kvm`, as Docker's --device) opens, the nodes in a
 * directory volume do not. Decided by the helper on the descriptor
 * it binds, never on an earlier look at the path (a symlink swapped
 * in between would choose what is bound without nodev).
 */
devIfDevice?: boolean, } | { "type": "file", contents: string, mode: number, } | { "type": "mask" } | { "type": "readonlyPath" } | { "type": "fs", fstype: string, data: string | null, 
/**
 * mount(2)'s source, shown in mountinfo (an OCI mount's `source`,
 * such as `shm`); the fstype when absent.
 */
source?: string, } | { "type": "symlink", link: string, } | { "type": "device", node: DeviceNode, major: number, minor: number, mode: number, uid: number, gid: number, } | { "type": "dir", mode: number, } | { "type": "scratch", mode: number, });

export type MountKind = { "type": "bind", source: string, recursive: boolean, 
/**
 * Shift the source's ids into the container's range (idmapped mount).
 */
idmap?: boolean, 
/**
 * Not nodev after all when what the source opened as is itself a
 * character or block device: a volume naming a device (`-v
 * /dev/kvm:/dev/kvm`, as Docker's --device) opens, the nodes in a
 * directory volume do not. Decided by the helper on the descriptor
 * it binds, never on an earlier look at the path (a symlink swapped
 * in between would choose what is bound without nodev).
 */
devIfDevice?: boolean, } | { "type": "file", contents: string, mode: number, } | { "type": "mask" } | { "type": "readonlyPath" } | { "type": "fs", fstype: string, data: string | null, 
/**
 * mount(2)'s source, shown in mountinfo (an OCI mount's `source`,
 * such as `shm`); the fstype when absent.
 */
source?: string, } | { "type": "symlink", link: string, } | { "type": "device", node: DeviceNode, major: number, minor: number, mode: number, uid: number, gid: number, } | { "type": "dir", mode: number, } | { "type": "scratch", mode: number, };

export type MapsPhase = { "writer": "none" } | { "writer": "helper", maps: IdMaps, } | { "writer": "node" };

export type IdMaps = { 
/**
 * "allow" or "deny".
 */
setgroups: string, 
/**
 * Lines of `CONTAINER HOST SIZE`.
 */
uidMap: string, gidMap: string, };

export type CgroupPhase = { "how": "none" } | { "how": "cloneInto", dir: string, procs: Array<string>, } | { "how": "place", procs: Array<string>, madeByNode: boolean, } | { "how": "enter", tasks: Array<string>, home: Array<string>, dir: string | null, procs: Array<string>, madeByNode: boolean, };

export type NetworkPhase = "loopback" | "node";

export type ProcessPlan = { 
/**
 * argv[0] is looked up in the container's PATH when it has no slash.
 */
argv: Array<string>, 
/**
 * `KEY=VALUE` strings, passed to execve as they are.
 */
env: Array<string>, 
/**
 * Working directory inside the container.
 */
cwd: string, user: User, 
/**
 * The five capability sets (OCI `process.capabilities`). `None` leaves
 * them as the user namespace gives them (all).
 */
capabilities: Capabilities | null, noNewPrivileges: boolean, rlimits: Array<Rlimit>, 
/**
 * The seccomp filter the addon compiled for this machine, loaded last
 * before execve; None runs unconfined. It travels as hex.
 */
seccomp: string | null, 
/**
 * Give the command a pseudo-terminal of this size as its stdin, stdout and
 * stderr (and controlling terminal); the master goes back to Node.
 */
tty: TtySize | null, 
/**
 * Print every step with its time offset to stderr.
 */
trace: boolean, 
/**
 * The file mode creation mask (OCI `process.user.umask`); None keeps
 * the one the helper was started with.
 */
umask: number | null, 
/**
 * The execution domain (personality(2); OCI `linux.personality`):
 * 0 for Linux, 8 for Linux32. None leaves it as it is.
 */
personality: number | null, 
/**
 * The I/O scheduling class and priority (OCI `process.ioPriority`).
 */
ioPriority: IoPriority | null, 
/**
 * The CPU scheduling policy and its parameters (OCI `process.scheduler`),
 * set with sched_setattr(2) while the process still may.
 */
scheduler: Scheduler | null, 
/**
 * OCI `startContainer` hooks: run once the process is ready (its ids,
 * capabilities, no_new_privs and seccomp filter in place, so a hook has
 * no more than the process has) just before it execs; their paths are
 * the container's.
 */
startContainerHooks: Hooks | null, 
/**
 * The NUMA memory policy (OCI `linux.memoryPolicy`), set with
 * set_mempolicy(2) before execve, so the process and its children have it.
 */
memoryPolicy: MemoryPolicy | null, 
/**
 * The filter has SCMP_ACT_NOTIFY rules: it is loaded with a listener,
 * whose descriptor goes to the sandbox's seccomp agent with this.
 */
seccompAgent: SeccompAgent | null, };

export type User = { 
/**
 * A uid or a name from the container's /etc/passwd.
 */
user: string, 
/**
 * A gid or a name from the container's /etc/group; the user's primary
 * group when absent.
 */
group: string | null, 
/**
 * More supplementary groups (gids or names), as `--group-add`.
 */
additionalGroups: Array<string>, };

export type Capabilities = { 
/**
 * What the process and its children may ever have (kept across execve).
 */
bounding: Array<string>, effective: Array<string>, permitted: Array<string>, 
/**
 * Kept across execve for programs with inheritable file capabilities.
 */
inheritable: Array<string>, 
/**
 * Kept across execve of ordinary programs, for a non-root user too
 * (each must be in the permitted and inheritable sets).
 */
ambient: Array<string>, };

export type Rlimit = { 
/**
 * Lowercase name without the prefix: `nofile`, `nproc`, ...
 */
name: string, 
/**
 * `None` is RLIM_INFINITY.
 */
soft: number | null, hard: number | null, };

export type TtySize = { rows: number, cols: number, };

export type NodeMsg = { "type": "plan" } & SandboxPlan | { "type": "maps" } | { "type": "cgroup" } | { "type": "network" } | { "type": "runtimeHooks" } | { "type": "process" } & ProcessPlan | { "type": "hold" } & ProcessPlan | { "type": "start" } | { "type": "signal", signo: number, } | { "type": "execInto", process: ProcessPlan, stdio: number, namespaces: Array<Namespace>, procs: Array<string>, cgroupDir: boolean, };

export type HelperMsg = { "type": "cloned", pid: number, monitor: number, } | { "type": "placed" } | { "type": "ready" } | { "type": "pty" } | { "type": "started", pid: number, } | { "type": "failed" } & Report | { "type": "exited", 
/**
 * Exit status of the command, when it exited.
 */
code: number | null, 
/**
 * Signal that ended the command, when one did.
 */
signal: number | null, rusage: Rusage, 
/**
 * The contents of the plan's `usage_files`, in its order (None: not
 * readable); empty for an exec'd process.
 */
usage?: Array<string | null>, } | { "type": "namespaces", namespaces: Array<Namespace>, procs: Array<string>, cgroupDir: boolean, };

export type ControlRequest = { "type": "exec", process: ProcessPlan, detach: boolean, } | { "type": "namespaces" } | { "type": "signal", signo: number, } | { "type": "wait" } | { "type": "start" } | { "type": "guard" };

export type Rusage = { userUsec: number, systemUsec: number, maxRssKib: number, };

export type Report = { step: Step, 
/**
 * 0 when the failure is not a system call's (a bad value, say).
 */
errno: number, path: string | null, 
/**
 * What was being done, in words: "mount proc on /proc".
 */
detail: string, hint: string | null, };

export type Step = "read_plan" | "join" | "clone" | "uid_map" | "gid_map" | "cgroup" | "idmap" | "wait_go" | "sysctl" | "mount_propagation" | "open_rootfs" | "open_source" | "staging" | "bind_rootfs" | "mount" | "device" | "hook" | "pivot_root" | "sethostname" | "loopback" | "unshare_cgroup" | "rlimit" | "setsid" | "user" | "tty" | "setgroups" | "setgid" | "setuid" | "capabilities" | "no_new_privs" | "chdir" | "init_fork" | "seccomp" | "exec" | "start";
