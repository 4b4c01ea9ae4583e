//! clone3 with CLONE_PIDFD, falling back to clone + pidfd_open (DESIGN.md, sync
//! point 2). With a null stack both behave like fork: the child returns here on a
//! copy of this single-threaded process, so it may run ordinary Rust.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

pub enum Forked {
    Child,
    /// `placed`: the child started in the requested cgroup.
    Parent {
        pid: Pid,
        pidfd: Option<OwnedFd>,
        placed: bool,
    },
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Clones with `flags` (CLONE_NEW* bits), into `cgroup` when given (v2 only).
pub fn clone_container(flags: u64, cgroup: Option<RawFd>) -> Result<Forked, Errno> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a null stack duplicates this single-threaded process;
    // the args struct outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match ret {
        0 => return Ok(Forked::Child),
        pid if pid > 0 => {
            // SAFETY: the kernel filled in a new descriptor that nothing else owns.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            return Ok(Forked::Parent {
                pid: Pid::from_raw(pid as i32),
                pidfd: Some(pidfd),
                placed: cgroup.is_some(),
            });
        }
        _ => {}
    }
    let err = Errno::last();
    // Old kernels (ENOSYS), seccomp filters that hide clone3 (ENOSYS/EPERM), and
    // kernels without CLONE_INTO_CGROUP (EINVAL) take the older path.
    if !matches!(err, Errno::ENOSYS | Errno::EINVAL | Errno::EPERM) {
        return Err(err);
    }
    // SAFETY: as above; the remaining arguments are unused with a null stack.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        0 => Ok(Forked::Child),
        pid if pid > 0 => {
            let pid = Pid::from_raw(pid as i32);
            // SAFETY: pidfd_open returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
            let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            Ok(Forked::Parent { pid, pidfd, placed: false })
        }
        _ => Err(Errno::last()),
    }
}

/// Names of the namespace flags set in `flags`, for the trace.
pub fn flag_names(flags: u64) -> String {
    let mut names: Vec<String> = tsbox_core::Namespace::ALL
        .iter()
        .filter(|ns| flags & ns.clone_flag() != 0)
        .map(|ns| {
            format!(
                "CLONE_NEW{}",
                match ns.name() {
                    "mount" => "NS".to_string(),
                    n => n.to_uppercase(),
                }
            )
        })
        .collect();
    if flags & CLONE_PARENT != 0 {
        names.push("CLONE_PARENT".into());
    }
    names.join("|")
}

/// The child's parent is the caller's parent (SandboxPlan.reparent).
pub const CLONE_PARENT: u64 = 0x8000;
