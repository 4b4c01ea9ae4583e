//! The launch plan: everything the helper needs to build the container, computed
//! in the parent before anything is cloned (DESIGN.md, sync point 1).

use serde::{Deserialize, Serialize};

/// Bumped whenever a field changes meaning or a required field is added.
pub const PLAN_VERSION: u32 = 7;

/// What the container is, apart from the process it runs: its root and
/// mounts, namespaces, ids, cgroup and network (the OCI runtime-spec's
/// `root`, `mounts` and `linux`). It travels in the first phase, `plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SandboxPlan {
    pub version: u32,
    pub hostname: String,
    pub namespaces: Vec<Namespace>,
    pub rootfs: RootfsSpec,
    /// Propagation of the container's mounts once it runs (OCI `rootfsPropagation`).
    pub rootfs_propagation: Propagation,
    /// Bytes the container may write outside its volumes: the size of the
    /// staging tmpfs that holds the overlay's upper layer and the scratch
    /// directories. None leaves the kernel's default (half of RAM).
    #[serde(default)]
    pub storage_size: Option<u64>,
    /// Applied in order after the root is bound; targets are container paths.
    pub mounts: Vec<Mount>,
    /// PID 1 is tsbox's minimal init (forwards signals, reaps, exits with the
    /// command's status). False makes the process PID 1.
    pub init: bool,
    /// Phase `maps`: who writes the id maps.
    pub maps: MapsPhase,
    /// Phase `cgroup`: how the child gets into its cgroup.
    pub cgroup: CgroupPhase,
    /// Directories of the cgroup that existed before the container (a
    /// joined OCI cgroupsPath): kept when it ends, never removed by the
    /// monitor.
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "Array<string>"))]
    pub cgroup_kept: Vec<String>,
    /// The cgroup files whose contents the result reports (peak memory, OOM
    /// kills, peak pids, throttling), in Node's order: the monitor reads
    /// them once the command has ended, while PID 1 exits, and sends them
    /// with `exited`.
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "Array<string>"))]
    pub usage_files: Vec<String>,
    /// A pool's sandbox: the process it most likely gets (the pool's, with
    /// no command), forked and prepared while the sandbox waits. A process
    /// that differs from it only in argv and env becomes that one; any
    /// other is prepared as usual.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub expected_process: Option<Box<ProcessPlan>>,
    /// Phase `network`: who sets up the network namespace.
    pub network: NetworkPhase,
    /// Print every setup step with its time offset to stderr.
    pub trace: bool,
    /// CLOCK_MONOTONIC time, in ns, that trace offsets count from.
    pub trace_t0_ns: u64,
    /// The pid that spawned the helper.
    pub parent_pid: i32,
    /// The monitor leaves its caller's process tree and outlives it, keeping
    /// the container (`run -d`, OCI `create`); otherwise the container dies
    /// with its caller.
    #[serde(default)]
    pub detach: bool,
    /// Where the monitor serves its control socket (exec, signals, wait):
    /// `control.sock` in the container's state directory.
    #[serde(default)]
    pub control: Option<String>,
    /// Namespaces of `namespaces` that are joined (an OCI namespace `path`)
    /// rather than new: the helper enters each before it clones.
    #[serde(default)]
    pub join: Vec<JoinedNamespace>,
    /// Kernel parameters of the container's own namespaces (OCI
    /// `linux.sysctl`), written by the child before it mounts anything.
    /// Node lets through only namespaced ones.
    #[serde(default)]
    pub sysctl: Vec<Sysctl>,
    /// A console made with the sandbox, before its process (an OCI bundle
    /// with `process.terminal`, whose master goes to `--console-socket` at
    /// create): a pty of the container's devpts, its slave bound on
    /// /dev/console, its master sent to Node. The process's `tty` then takes
    /// this pty instead of making one.
    #[serde(default)]
    pub console: Option<TtySize>,
    /// A time namespace of its own with these clock offsets (OCI `time`
    /// and `linux.timeOffsets`): the helper unshares it for its children
    /// and writes the offsets before the container enters it.
    #[serde(default)]
    pub time: Option<TimeOffsets>,
    /// The NIS domain name, in the container's own uts namespace (OCI `domainname`).
    #[serde(default)]
    pub domainname: Option<String>,
    /// The container's first process is a child of the monitor's parent
    /// (CLONE_PARENT), not of the monitor: as a runc container is of its
    /// caller's subreaper (conmon, containerd's shim), which waits for it and
    /// has its exit status. The monitor follows it by its pidfd.
    #[serde(default)]
    pub reparent: bool,
    /// OCI `createContainer` hooks: run by the child in the container's
    /// namespaces once its mounts are made, before pivot_root (their paths
    /// are the host's), each with the state on its stdin.
    #[serde(default)]
    pub create_container_hooks: Option<Hooks>,
    /// Node runs the OCI `prestart` and `createRuntime` hooks once the
    /// container is cloned, and the child waits for them (`hooked`) after its
    /// mounts and before its createContainer hooks and pivot_root, as the
    /// runtime-spec orders them.
    #[serde(default)]
    pub runtime_hooks: bool,
    /// OCI `linux.seccomp.listenerPath`: the seccomp agent's Unix socket,
    /// connected to with the caller's credentials before pivot_root; the
    /// process sends its filter's notification descriptor there.
    #[serde(default)]
    pub seccomp_listener: Option<String>,
    /// A detached container's stdout and stderr go through a pipe that the
    /// monitor copies to its log (the helper's stdout), at most this many
    /// bytes per file, the full one kept as `container.log.1`: /run is
    /// memory. None: the container writes the log itself, without limit.
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "number"))]
    pub log_max_size: Option<u64>,
}

/// OCI hooks the child runs itself, in order, and the state they read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Hooks {
    pub hooks: Vec<Hook>,
    /// The runtime-spec state as JSON; the child sets its `pid` (the
    /// container's, as the host sees it) before a hook reads it.
    pub state: String,
}

/// One OCI hook: `path` executed with `args` (argv[0] first; empty is just
/// the path) and exactly `env`, killed after `timeout` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Hook {
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout: Option<u32>,
}

/// Offsets of CLOCK_MONOTONIC and CLOCK_BOOTTIME in a new time namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TimeOffsets {
    pub monotonic: Option<ClockOffset>,
    pub boottime: Option<ClockOffset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClockOffset {
    pub secs: i64,
    pub nanosecs: u32,
}

/// `/proc/sys/<key with . as />` = value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

/// An existing namespace the container enters, by its path
/// (`/proc/PID/ns/net`, a bind mount of one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JoinedNamespace {
    pub ns: Namespace,
    pub path: String,
}

/// Who writes the child's id maps (phase `maps`), decided once, by Node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "writer", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum MapsPhase {
    /// No new user namespace: nothing to write.
    None,
    /// The helper writes them right after clone: everything root may write,
    /// and an unprivileged caller's single own id.
    Helper { maps: IdMaps },
    /// Node writes them through the setuid newuidmap/newgidmap and says
    /// `maps` when done.
    Node,
}

/// How the child gets into its cgroup (phase `cgroup`), decided once, by Node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "how", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum CgroupPhase {
    /// No cgroup (an unprivileged caller without a delegated one).
    None,
    /// Pure v2: clone3 puts the child straight into `dir`
    /// (CLONE_INTO_CGROUP); `procs` is the fallback on a kernel without it.
    CloneInto { dir: String, procs: Vec<String> },
    /// v1 and hybrid: the helper writes the child's pid to each of `procs`
    /// (the `cgroup.procs` of every hierarchy) while the child builds its
    /// mounts; a v1 move waits for an RCU grace period, which this overlaps.
    /// `made_by_node`: Node makes the cgroup while the helper clones and
    /// says `cgroup` once it exists.
    Place { procs: Vec<String>, made_by_node: bool },
    /// v1 and hybrid, as host root: the helper's own thread enters the
    /// container's v1 cgroups by writing `0` to each of `tasks` (a thread
    /// that moves itself takes no RCU grace period; a move by pid through
    /// cgroup.procs waits for one, ~8 ms after an idle spell), clones the
    /// child there (a hybrid host's cgroup2 directory `dir` with
    /// CLONE_INTO_CGROUP), and goes back through `home`: its own cgroups'
    /// `tasks`, hierarchy by hierarchy as `tasks`. `procs`: every
    /// hierarchy's cgroup.procs, for exec'd processes and the teardown.
    /// `made_by_node`: the helper waits for `cgroup` before it clones.
    Enter {
        tasks: Vec<String>,
        home: Vec<String>,
        dir: Option<String>,
        procs: Vec<String>,
        made_by_node: bool,
    },
}

/// Who sets up the network namespace (phase `network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum NetworkPhase {
    /// A namespace of its own with loopback up and nothing else (the child
    /// does it), or the host's when there is no net namespace.
    Loopback,
    /// Node's hook acts on the child's network namespace between `cloned`
    /// and `go`, and says `network` when done.
    Node,
}

/// What runs in a sandbox: the OCI runtime-spec's `process`. The container's
/// first process (phase `process`), or one exec'd into a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ProcessPlan {
    /// argv[0] is looked up in the container's PATH when it has no slash.
    pub argv: Vec<String>,
    /// `KEY=VALUE` strings, passed to execve as they are.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    pub user: User,
    /// The five capability sets (OCI `process.capabilities`). `None` leaves
    /// them as the user namespace gives them (all).
    pub capabilities: Option<Capabilities>,
    pub no_new_privileges: bool,
    pub rlimits: Vec<Rlimit>,
    /// The seccomp filter the addon compiled for this machine, loaded last
    /// before execve; None runs unconfined. It travels as hex.
    #[cfg_attr(test, ts(type = "string | null"))]
    pub seccomp: Option<crate::seccomp::Bpf>,
    /// Give the command a pseudo-terminal of this size as its stdin, stdout and
    /// stderr (and controlling terminal); the master goes back to Node.
    #[serde(default)]
    pub tty: Option<TtySize>,
    /// Print every step with its time offset to stderr.
    #[serde(default)]
    pub trace: bool,
    /// The file mode creation mask (OCI `process.user.umask`); None keeps
    /// the one the helper was started with.
    #[serde(default)]
    pub umask: Option<u32>,
    /// The execution domain (personality(2); OCI `linux.personality`):
    /// 0 for Linux, 8 for Linux32. None leaves it as it is.
    #[serde(default)]
    pub personality: Option<u32>,
    /// The I/O scheduling class and priority (OCI `process.ioPriority`).
    #[serde(default)]
    pub io_priority: Option<IoPriority>,
    /// The CPU scheduling policy and its parameters (OCI `process.scheduler`),
    /// set with sched_setattr(2) while the process still may.
    #[serde(default)]
    pub scheduler: Option<Scheduler>,
    /// OCI `startContainer` hooks: run once the process is ready (its ids,
    /// capabilities, no_new_privs and seccomp filter in place, so a hook has
    /// no more than the process has) just before it execs; their paths are
    /// the container's.
    #[serde(default)]
    pub start_container_hooks: Option<Hooks>,
    /// The NUMA memory policy (OCI `linux.memoryPolicy`), set with
    /// set_mempolicy(2) before execve, so the process and its children have it.
    #[serde(default)]
    pub memory_policy: Option<MemoryPolicy>,
    /// The filter has SCMP_ACT_NOTIFY rules: it is loaded with a listener,
    /// whose descriptor goes to the sandbox's seccomp agent with this.
    #[serde(default)]
    pub seccomp_agent: Option<SeccompAgent>,
}

/// What a seccomp agent gets with the descriptor (the runtime-spec's
/// containerProcessState): `listenerMetadata`, and the container's state as
/// JSON (the process sets its `pid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SeccompAgent {
    pub metadata: String,
    pub state: String,
    /// An exec'd process's own connection: the agent's socket, connected to
    /// before the process joins the container's mount namespace (the first
    /// process connects while its sandbox is built: `SandboxPlan::seccomp_listener`).
    #[serde(default)]
    pub connect: Option<String>,
}

/// set_mempolicy(2)'s arguments by number: the mode (MPOL_BIND 2, ...), its
/// flags (MPOL_F_STATIC_NODES, ...) and the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MemoryPolicy {
    pub mode: u32,
    pub flags: u32,
    pub nodes: Vec<u32>,
}

/// ioprio_set(2)'s value: a class (1 realtime, 2 best effort, 3 idle) and a
/// priority 0..7 within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct IoPriority {
    pub class: u8,
    pub priority: u8,
}

/// sched_setattr(2)'s struct sched_attr, by number (Node maps the names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Scheduler {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// A process's capability sets, by name (`CAP_X`), as the OCI runtime-spec
/// gives them. Names the kernel does not know are left out, as runc does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// What the process and its children may ever have (kept across execve).
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    /// Kept across execve for programs with inheritable file capabilities.
    pub inheritable: Vec<String>,
    /// Kept across execve of ordinary programs, for a non-root user too
    /// (each must be in the permitted and inheritable sets).
    pub ambient: Vec<String>,
}

impl Capabilities {
    /// Docker's and OCI's way for a list of kept capabilities: bounding,
    /// permitted and effective; inheritable and ambient empty.
    pub fn kept(names: Vec<String>) -> Capabilities {
        Capabilities {
            bounding: names.clone(),
            effective: names.clone(),
            permitted: names,
            inheritable: Vec::new(),
            ambient: Vec::new(),
        }
    }
}

/// `/proc/PID/{setgroups,uid_map,gid_map}` contents, written in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct IdMaps {
    /// "allow" or "deny".
    pub setgroups: String,
    /// Lines of `CONTAINER HOST SIZE`.
    pub uid_map: String,
    pub gid_map: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum Namespace {
    User,
    Pid,
    Mount,
    Net,
    Ipc,
    Uts,
    Cgroup,
}

impl Namespace {
    pub const ALL: [Namespace; 7] = [
        Namespace::User,
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Cgroup,
    ];

    /// The CLONE_NEW* flag (values from <linux/sched.h>, the same on every arch).
    pub fn clone_flag(self) -> u64 {
        match self {
            Namespace::User => 0x1000_0000,
            Namespace::Pid => 0x2000_0000,
            Namespace::Mount => 0x0002_0000,
            Namespace::Net => 0x4000_0000,
            Namespace::Ipc => 0x0800_0000,
            Namespace::Uts => 0x0400_0000,
            Namespace::Cgroup => 0x0200_0000,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Mount => "mount",
            Namespace::Net => "net",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Cgroup => "cgroup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum RootfsSpec {
    /// A directory on the host as the container's root.
    Path {
        path: String,
        mode: RootMode,
        /// Shift the rootfs's ids into the container's range with an idmapped
        /// mount (made by the helper, which has the privilege for it).
        idmap: bool,
        /// Device nodes on the root do not open (MOUNT_ATTR_NODEV): how an
        /// OCI bundle's deny-all device rule holds for a container that may
        /// mknod outside a user namespace.
        #[serde(default)]
        #[cfg_attr(test, ts(optional, type = "boolean"))]
        nodev: bool,
        /// An image's lower layers under `path` (its top layer), top first:
        /// more read-only lower directories of the overlay, each idmapped as
        /// the rootfs is. Only with the overlay or read-only modes.
        #[serde(default)]
        #[cfg_attr(test, ts(optional, type = "Array<string>"))]
        layers: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum RootMode {
    /// The directory is the lower layer of an overlay whose upper layer lives
    /// on a tmpfs and is thrown away: the user's directory is never written.
    Overlay,
    /// Bound read-only, recursively.
    Readonly,
    /// Bound read-write: the container writes into the directory (OCI bundles).
    Bind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum DeviceNode {
    Char,
    Block,
    Fifo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum Propagation {
    Private,
    Slave,
    Shared,
    Unbindable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// No deny_unknown_fields here: serde cannot combine it with `flatten`.
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Mount {
    /// Absolute path inside the container.
    pub target: String,
    #[serde(flatten)]
    pub kind: MountKind,
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "boolean"))]
    pub readonly: bool,
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "boolean"))]
    pub nosuid: bool,
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "boolean"))]
    pub nodev: bool,
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "boolean"))]
    pub noexec: bool,
    /// Skip, rather than fail, when the mount point is missing and cannot be
    /// created (a read-only root, or a directory the container may not write).
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "boolean"))]
    pub optional: bool,
    /// More MS_* flags for a fresh filesystem (`fs`), as an OCI mount's
    /// options give them: the atime ones, sync, dirsync, lazytime, silent.
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "number"))]
    pub flags: u32,
    /// The mount's own propagation (an OCI mount's `shared`, `rslave`, ...),
    /// set once the root has its own (rootfsPropagation), so it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub propagation: Option<MountPropagation>,
}

/// A propagation type, for the mount alone or (`recursive`) with every mount below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MountPropagation {
    pub kind: Propagation,
    pub recursive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum MountKind {
    /// A host file or directory bound onto the target (created if missing).
    Bind {
        source: String,
        recursive: bool,
        /// Shift the source's ids into the container's range (idmapped mount).
        #[serde(default)]
        #[cfg_attr(test, ts(optional, type = "boolean"))]
        idmap: bool,
        /// Not nodev after all when what the source opened as is itself a
        /// character or block device: a volume naming a device (`-v
        /// /dev/kvm:/dev/kvm`, as Docker's --device) opens, the nodes in a
        /// directory volume do not. Decided by the helper on the descriptor
        /// it binds, never on an earlier look at the path (a symlink swapped
        /// in between would choose what is bound without nodev).
        #[serde(default, rename = "devIfDevice")]
        #[cfg_attr(test, ts(optional, type = "boolean"))]
        dev_if_device: bool,
    },
    /// A file with these contents, private to the container (on its staging
    /// tmpfs), bound onto the target: /etc/hostname, /etc/hosts, ...
    File { contents: String, mode: u32 },
    /// Hide an existing path: an empty read-only tmpfs over a directory, /dev/null
    /// over a file. A missing path is left alone.
    Mask,
    /// Make an existing path read-only (a recursive bind onto itself). A missing
    /// path is left alone.
    ReadonlyPath,
    /// A fresh filesystem: proc, sysfs, tmpfs, devpts, mqueue.
    Fs {
        fstype: String,
        data: Option<String>,
        /// mount(2)'s source, shown in mountinfo (an OCI mount's `source`,
        /// such as `shm`); the fstype when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(test, ts(optional, type = "string"))]
        source: Option<String>,
    },
    /// A symlink created at the target (on a filesystem the container owns).
    Symlink { link: String },
    /// A device node or fifo at the target (OCI `linux.devices`), with
    /// exactly this mode and owner (container ids). Made on a tmpfs of its
    /// own and bound onto the target, so it opens even where the filesystem
    /// around it is nodev; in a user namespace, where mknod is refused, the
    /// host's node at the same path is bound instead.
    Device {
        node: DeviceNode,
        major: u32,
        minor: u32,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A directory created at the target with this mode.
    Dir { mode: u32 },
    /// A writable directory of the staging tmpfs bound onto the target (a
    /// read-only root's /tmp and /run): its writes count against the
    /// container's storage limit with everything else it writes.
    Scratch { mode: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct User {
    /// A uid or a name from the container's /etc/passwd.
    pub user: String,
    /// A gid or a name from the container's /etc/group; the user's primary
    /// group when absent.
    pub group: Option<String>,
    /// More supplementary groups (gids or names), as `--group-add`.
    pub additional_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Rlimit {
    /// Lowercase name without the prefix: `nofile`, `nproc`, ...
    pub name: String,
    /// `None` is RLIM_INFINITY.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl SandboxPlan {
    /// The CLONE_NEW* flags of the container's clone.
    pub fn clone_flags(&self) -> u64 {
        // The cgroup namespace is unshared by the child once it is in its
        // cgroup (phase `cgroup`), never passed to clone; joined ones are
        // entered before.
        self.namespaces
            .iter()
            .filter(|ns| **ns != Namespace::Cgroup && !self.joins(**ns))
            .fold(0, |flags, ns| flags | ns.clone_flag())
    }

    /// Whether namespace `ns` is joined rather than new.
    pub fn joins(&self, ns: Namespace) -> bool {
        self.join.iter().any(|j| j.ns == ns)
    }

    pub fn has(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SandboxPlan {
        SandboxPlan {
            version: PLAN_VERSION,
            hostname: "box".into(),
            namespaces: Namespace::ALL.to_vec(),
            rootfs: RootfsSpec::Path {
                path: "/".into(),
                mode: RootMode::Readonly,
                idmap: false,
                nodev: false,
                layers: Vec::new(),
            },
            rootfs_propagation: Propagation::Private,
            storage_size: Some(1 << 30),
            mounts: vec![
                Mount {
                    target: "/proc".into(),
                    kind: MountKind::Fs {
                        fstype: "proc".into(),
                        data: None,
                        source: None,
                    },
                    readonly: false,
                    nosuid: true,
                    nodev: true,
                    noexec: true,
                    optional: false,
                    flags: 0,
                    propagation: None,
                },
                Mount {
                    target: "/dev/null".into(),
                    kind: MountKind::Bind {
                        source: "/dev/null".into(),
                        recursive: false,
                        idmap: false,
                        dev_if_device: false,
                    },
                    readonly: false,
                    nosuid: true,
                    nodev: false,
                    noexec: true,
                    optional: false,
                    flags: 0,
                    propagation: None,
                },
            ],
            init: true,
            maps: MapsPhase::Helper {
                maps: IdMaps {
                    setgroups: "allow".into(),
                    uid_map: "0 1879048192 65536\n".into(),
                    gid_map: "0 1879048192 65536\n".into(),
                },
            },
            cgroup: CgroupPhase::Place {
                procs: vec!["/sys/fs/cgroup/pids/tsbox/x/cgroup.procs".into()],
                made_by_node: true,
            },
            cgroup_kept: vec![],
            usage_files: vec![],
            expected_process: None,
            network: NetworkPhase::Loopback,
            trace: false,
            trace_t0_ns: 0,
            parent_pid: 1,
            detach: false,
            control: Some("/run/tsbox/x/control.sock".into()),
            join: Vec::new(),
            sysctl: Vec::new(),
            console: None,
            time: None,
            domainname: None,
            reparent: false,
            create_container_hooks: None,
            runtime_hooks: false,
            seccomp_listener: None,
            log_max_size: None,
        }
    }

    pub(crate) fn sample_process() -> ProcessPlan {
        ProcessPlan {
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: User {
                user: "0".into(),
                group: None,
                additional_groups: vec![],
            },
            capabilities: Some(Capabilities::kept(vec!["CAP_CHOWN".into()])),
            no_new_privileges: true,
            rlimits: vec![Rlimit {
                name: "nofile".into(),
                soft: Some(64),
                hard: None,
            }],
            seccomp: None,
            tty: None,
            trace: false,
            umask: Some(0o022),
            personality: None,
            io_priority: None,
            scheduler: None,
            start_container_hooks: None,
            memory_policy: None,
            seccomp_agent: None,
        }
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plan = sample();
        let back: SandboxPlan = crate::decode(&crate::encode(&plan)).unwrap();
        assert_eq!(back, plan);
        let process = sample_process();
        let back: ProcessPlan = crate::decode(&crate::encode(&process)).unwrap();
        assert_eq!(back, process);
    }

    #[test]
    fn plan_json_is_camel_case_with_tagged_mounts_and_phases() {
        let v: serde_json::Value = serde_json::from_slice(&crate::encode(&sample())).unwrap();
        assert_eq!(v["rootfs"]["kind"], "path");
        assert_eq!(v["mounts"][0]["type"], "fs");
        assert_eq!(v["mounts"][0]["fstype"], "proc");
        assert_eq!(v["mounts"][1]["type"], "bind");
        assert_eq!(v["maps"]["writer"], "helper");
        assert_eq!(v["maps"]["maps"]["uidMap"], "0 1879048192 65536\n");
        assert_eq!(v["cgroup"]["how"], "place");
        assert_eq!(v["cgroup"]["madeByNode"], true);
        assert_eq!(v["network"], "loopback");
        let p: serde_json::Value = serde_json::from_slice(&crate::encode(&sample_process())).unwrap();
        assert_eq!(p["noNewPrivileges"], true);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v: serde_json::Value = serde_json::from_slice(&crate::encode(&sample())).unwrap();
        v["surprise"] = serde_json::json!(1);
        let err = serde_json::from_value::<SandboxPlan>(v).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn clone_flags_leave_out_the_cgroup_namespace() {
        let plan = sample();
        let flags = plan.clone_flags();
        assert_eq!(flags & Namespace::Cgroup.clone_flag(), 0);
        for ns in Namespace::ALL.iter().filter(|n| **n != Namespace::Cgroup) {
            assert_ne!(flags & ns.clone_flag(), 0, "{:?}", ns);
        }
    }
}
