//! tsbox's default profile: an allowlist in the spirit of Docker's default,
//! including every rule of the seed program (contained.c), with everything else
//! answered EPERM (DESIGN.md, Defaults).
//!
//! The allowlist is Docker's for a container with Docker's default capabilities
//! (the calls it allows only with CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_NICE and
//! the like are left out, since tsbox drops those capabilities), restricted to
//! x86_64 and aarch64, and differing in these ways:
//! - the seed's rules: chmod/fchmod/fchmodat/fchmodat2 setting S_ISUID or
//!   S_ISGID, clone/unshare with CLONE_NEWUSER, ioctl TIOCSTI and TIOCLINUX are
//!   EPERM; keyctl, add_key, request_key, ptrace, mbind, migrate_pages,
//!   move_pages, set_mempolicy, userfaultfd and perf_event_open are always EPERM
//!   (Docker allows ptrace and process_vm_* on recent kernels; tsbox does not);
//! - clone and unshare are allowed unless they ask for a user namespace; creating
//!   the other namespaces needs CAP_SYS_ADMIN, which the default drops;
//! - clone3 returns ENOSYS, so libc falls back to clone, whose flags the filter
//!   can see; so do the calls whose callers treat ENOSYS as "use the old way"
//!   (statmount, listmount, lsm_*);
//! - io_uring is not allowed (a large kernel attack surface; libuv and others
//!   fall back to ordinary system calls when io_uring_setup fails);
//! - the ioctl and personality checks compare the low 32 bits, because the
//!   kernel truncates those arguments to 32 bits before using them;
//! - sockets: only the families a sandboxed program has a use for
//!   ([`SOCKET_FAMILIES`]); every other family (AF_VSOCK above all, which is
//!   not network-namespaced: a container with only `lo` would share the
//!   host's vsock port space) is EAFNOSUPPORT, which programs read as "this
//!   kernel has no such family". Docker and podman allow every family but
//!   AF_VSOCK; tsbox also refuses AF_ALG, AF_KEY, AF_RDS, AF_TIPC, AF_CAN,
//!   AF_BLUETOOTH, AF_NFC, AF_SMC and the rest, rarely used and often
//!   the seat of kernel bugs;
//! - no setuid or setgid file is created without chmod either: open, openat
//!   and creat with O_CREAT or O_TMPFILE and a mode with S_ISUID or S_ISGID,
//!   and mknod/mknodat of a regular file with those bits, are EPERM (the
//!   kernel clears the bits on the first write today; tsbox does not rely on
//!   that). openat2 answers ENOSYS, since its mode sits in memory a filter
//!   cannot read; libc does not use it, and its callers fall back to openat;
//! - terminal ioctls that would outlive the container on a terminal it was
//!   given (without `-t`, the caller's own): TIOCEXCL (the caller could no
//!   longer open its terminal), TIOCSETD (the line discipline) and TIOCCONS
//!   (the console redirect) are EPERM.

use super::profile::{Action, Arg, Op, Profile, SyscallRule};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const EAFNOSUPPORT: u32 = 97;

const S_ISUID: u64 = 0o4000;
const S_ISGID: u64 = 0o2000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541c;
const TIOCEXCL: u64 = 0x540c;
const TIOCSETD: u64 = 0x5423;
const TIOCCONS: u64 = 0x541d;
const LOW_32_BITS: u64 = 0xffff_ffff;
const O_CREAT: u64 = 0o100;
const O_TMPFILE: u64 = 0o2000_0000; // __O_TMPFILE; O_TMPFILE adds O_DIRECTORY
const S_IFMT: u64 = 0o170_000;
const S_IFREG: u64 = 0o100_000;

/// The socket families a container may open (the low 32 bits of socket's
/// first argument, which the kernel reads as an int): local sockets, IPv4 and
/// IPv6, netlink (ip, ss, glibc's getaddrinfo and if_nameindex) and packet
/// sockets (DHCP clients, tcpdump; they also need CAP_NET_RAW).
pub const SOCKET_FAMILIES: [(&str, u64); 5] = [
    ("AF_UNIX", 1),
    ("AF_INET", 2),
    ("AF_INET6", 10),
    ("AF_NETLINK", 16),
    ("AF_PACKET", 17),
];

/// What ordinary programs need: libc and the dynamic loader, shells, busybox,
/// coreutils, Node.js and V8, and tsbox's own init (signalfd, wait4, kill, ...).
/// chmod, clone, unshare and ioctl are here too: the conditional rules that
/// deny their dangerous forms are tried first.
pub(crate) const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "file_getattr",
    "file_setattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "unshare",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// The seed's unconditional denials.
pub(crate) const ALWAYS_DENIED: &[&str] = &[
    "keyctl",
    "add_key",
    "request_key",
    "ptrace",
    "mbind",
    "migrate_pages",
    "move_pages",
    "set_mempolicy",
    "userfaultfd",
    "perf_event_open",
];

/// Calls answered "not implemented", which their callers take as "fall back".
pub(crate) const NOT_IMPLEMENTED: &[&str] = &[
    "clone3",
    "openat2",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
];

/// personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26,
/// PER_LINUX32|UNAME26, and the query 0xffffffff.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `(argument index, mask, value)`: the argument, masked, equals the value.
type Masked = (u32, u64, u64);

fn masked(conditions: &[Masked]) -> Vec<Arg> {
    conditions
        .iter()
        .map(|&(index, mask, value)| Arg {
            index,
            value: mask,
            value_two: value,
            op: Op::MaskedEq,
        })
        .collect()
}

fn deny_masked(list: &[&str], index: u32, mask: u64, value: u64) -> SyscallRule {
    deny_when(list, EPERM, &[(index, mask, value)])
}

/// `errno` for the calls in `list` when every condition holds.
fn deny_when(list: &[&str], errno: u32, conditions: &[Masked]) -> SyscallRule {
    SyscallRule {
        names: names(list),
        action: Action::Errno,
        errno_ret: Some(errno),
        args: masked(conditions),
    }
}

fn allow_when(list: &[&str], conditions: &[Masked]) -> SyscallRule {
    SyscallRule {
        names: names(list),
        action: Action::Allow,
        errno_ret: None,
        args: masked(conditions),
    }
}

/// The rules both built-in profiles add to the seed's (module docs): the
/// socket families, setuid and setgid files made without chmod, and the
/// terminal ioctls. Conditional rules are tried before unconditional ones, so
/// the trailing `socket` and `socketpair` rules catch every other family.
pub fn hardening_rules() -> Vec<SyscallRule> {
    let mut rules = Vec::new();
    for (_, family) in SOCKET_FAMILIES {
        rules.push(allow_when(&["socket"], &[(0, LOW_32_BITS, family)]));
    }
    // socketpair exists for AF_UNIX only.
    rules.push(allow_when(&["socketpair"], &[(0, LOW_32_BITS, 1)]));
    for bit in [S_ISUID, S_ISGID] {
        for create in [O_CREAT, O_TMPFILE] {
            rules.push(deny_when(&["open"], EPERM, &[(1, create, create), (2, bit, bit)]));
            rules.push(deny_when(&["openat"], EPERM, &[(2, create, create), (3, bit, bit)]));
        }
        rules.push(deny_masked(&["creat"], 1, bit, bit));
        // A regular file: S_IFREG, or no type at all (mknod's default).
        for kind in [S_IFREG, 0] {
            rules.push(deny_masked(&["mknod"], 1, S_IFMT | bit, kind | bit));
            rules.push(deny_masked(&["mknodat"], 2, S_IFMT | bit, kind | bit));
        }
    }
    for request in [TIOCEXCL, TIOCSETD, TIOCCONS] {
        rules.push(deny_masked(&["ioctl"], 1, LOW_32_BITS, request));
    }
    rules.push(SyscallRule {
        names: names(&["socket", "socketpair"]),
        action: Action::Errno,
        errno_ret: Some(EAFNOSUPPORT),
        args: vec![],
    });
    rules
}

/// The default profile, as data (the same that [`default_profile_json`] prints).
pub fn default_profile() -> Profile {
    let mut syscalls = vec![
        // contained.c: no setuid or setgid bits, from any of the chmod family.
        deny_masked(&["chmod", "fchmod"], 1, S_ISUID, S_ISUID),
        deny_masked(&["chmod", "fchmod"], 1, S_ISGID, S_ISGID),
        deny_masked(&["fchmodat", "fchmodat2"], 2, S_ISUID, S_ISUID),
        deny_masked(&["fchmodat", "fchmodat2"], 2, S_ISGID, S_ISGID),
        // contained.c: no new user namespace, where the process would regain
        // every capability.
        deny_masked(&["clone", "unshare"], 0, CLONE_NEWUSER, CLONE_NEWUSER),
        // contained.c: no typing into the controlling terminal's input queue
        // (TIOCSTI), nor TIOCLINUX's equivalent on a virtual console.
        deny_masked(&["ioctl"], 1, LOW_32_BITS, TIOCSTI),
        deny_masked(&["ioctl"], 1, LOW_32_BITS, TIOCLINUX),
    ];
    syscalls.extend(hardening_rules());
    for p in PERSONALITIES {
        syscalls.push(SyscallRule {
            names: names(&["personality"]),
            action: Action::Allow,
            errno_ret: None,
            args: vec![Arg {
                index: 0,
                value: LOW_32_BITS,
                value_two: p,
                op: Op::MaskedEq,
            }],
        });
    }
    syscalls.push(SyscallRule {
        names: names(ALLOWED),
        action: Action::Allow,
        errno_ret: None,
        args: vec![],
    });
    syscalls.push(SyscallRule {
        names: names(ALWAYS_DENIED),
        action: Action::Errno,
        errno_ret: Some(EPERM),
        args: vec![],
    });
    syscalls.push(SyscallRule {
        names: names(NOT_IMPLEMENTED),
        action: Action::Errno,
        errno_ret: Some(ENOSYS),
        args: vec![],
    });
    Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(EPERM),
        architectures: vec!["SCMP_ARCH_X86_64".into(), "SCMP_ARCH_AARCH64".into()],
        flags: vec![],
        listener_path: None,
        listener_metadata: None,
        syscalls,
    }
}

/// The default profile as OCI JSON, for users to dump, edit and pass back with
/// `--security-opt seccomp=PATH`.
pub fn default_profile_json() -> String {
    default_profile().to_json_pretty()
}
