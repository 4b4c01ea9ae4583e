//! Moving a process between v1 cgroups waits for an RCU grace period (the
//! write side of the kernel's cgroup_threadgroup_rwsem), and after an idle
//! spell that wait is several milliseconds. Moves that come while another is
//! in progress, or shortly after one, share its grace period. So a launch
//! whose helper will move the container by pid (cgroup.procs: the root of a
//! user namespace, a pids limit below 2; as the host's root the helper's
//! own thread enters the cgroups instead, which waits for nothing) moves
//! this process into the cgroup it is already in, on a thread of its own,
//! as soon as it knows: the wait starts early and runs beside the launch.
//!
//! Also the two pidfd calls the v1 teardown kills with (Node has none).

use std::io::Write;

use napi_derive::napi;

/// Writes this process's pid to `procs` (a cgroup.procs of the cgroup it is
/// in) on a short-lived thread; returns at once. Errors are ignored: this
/// only saves time.
#[napi]
pub fn prewarm_cgroup_move(procs: String) {
    let _ = std::thread::Builder::new().name("tsbox-prewarm".into()).spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&procs) {
            let _ = f.write_all(std::process::id().to_string().as_bytes());
        }
    });
}

/// pidfd_open(2): a descriptor for the process numbered `pid` now, which
/// keeps naming that process after it has exited and its number has gone to
/// another (Linux 5.3). Close-on-exec; the caller closes it (fs.closeSync).
/// Returns the descriptor, or -errno (-ESRCH: no process has that number).
///
/// The v1 teardown kills what is left in a cgroup by its pids, read from
/// cgroup.procs: with a pidfd opened first and the cgroup listed again after,
/// a pid still listed is the process the pidfd holds (or that process has
/// exited, and the signal finds nothing), never a stranger that took the
/// number meanwhile.
#[napi]
pub fn pidfd_open(pid: i32) -> i32 {
    if pid <= 0 {
        return -libc::EINVAL;
    }
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        -nix::errno::Errno::last_raw()
    } else {
        fd as i32
    }
}

/// pidfd_send_signal(2): sends signal `signal` to the process `pidfd` holds
/// (from `pidfdOpen`). Returns 0, or -errno (-ESRCH: it has exited).
#[napi]
pub fn pidfd_send_signal(pidfd: i32, signal: i32) -> i32 {
    // SAFETY: a descriptor number, a signal number, no siginfo, no flags;
    // a descriptor that is not a pidfd only makes it fail (EBADF).
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, signal, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r < 0 {
        -nix::errno::Errno::last_raw()
    } else {
        0
    }
}
