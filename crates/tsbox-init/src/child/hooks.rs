//! The OCI hooks the container's first process runs itself, because they
//! belong in its namespaces: `createContainer` once its mounts are made and
//! before pivot_root (its path is the host's), `startContainer` once the
//! process is ready and just before it execs (its path is the container's,
//! and it runs with no more than the process has: its ids, capabilities,
//! no_new_privs and seccomp filter).
//!
//! Each hook is a child of this process, with the state JSON on its stdin,
//! exactly its `env`, and nothing else of ours open; it is waited for, and
//! killed at its timeout. The first that fails ends the launch with a report
//! naming it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use tsbox_core::{Hook, Hooks, Report, Step};

use crate::fail::Result;
use crate::trace::{trace, Trace};

static HOST_PID: OnceLock<i32> = OnceLock::new();
/// Remembers this process's pid as the host sees it, for the hooks' state:
/// read through /proc/self while /proc is still the host's (before the
/// container's own is mounted and the root pivots).
pub fn remember_host_pid() {
    let pid = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| nix::unistd::getpid().as_raw());
    let _ = HOST_PID.set(pid);
}

/// Waits until Node has run the runtime's hooks (`hooked`).
pub fn wait_runtime_hooks(chan: &crate::channel::Channel) -> Result<()> {
    match chan.recv::<tsbox_core::ToChild>() {
        Ok(Some(tsbox_core::ToChild::Hooked)) => Ok(()),
        // The helper is gone (a hook failed, and Node gave up): nobody to report to.
        // SAFETY: ends this process without running anything else.
        Ok(None) => unsafe { libc::_exit(125) },
        Ok(Some(other)) => Err(Report::new(Step::WaitGo, libc::EPROTO).detail(format!("expected hooked, got {other:?}"))),
        Err(e) => Err(Report::new(Step::WaitGo, e.errno()).detail(e.to_string())),
    }
}

/// This process's pid as the host sees it (remembered before /proc changed), else its own.
pub fn host_pid() -> i32 {
    HOST_PID.get().copied().unwrap_or_else(|| nix::unistd::getpid().as_raw())
}

/// Runs `hooks` (of the kind `name`, for reports: `createContainer`) in
/// order, each reading the state with `status` and the host pid. With
/// `rootfs` (createContainer's: the host path of the container's root), each
/// runs in a mount namespace of its own, a copy of the container's in which
/// tsbox's staging tmpfs is gone from /tmp (so the host's /tmp is there
/// again) and the assembled root is at `rootfs`, where the runtime-spec's
/// `root.path` says it is: what a hook writes there the container has.
pub fn run(name: &str, hooks: &Hooks, status: &str, rootfs: Option<&str>, tr: Trace) -> Result<()> {
    let pid = host_pid();
    let mut state: serde_json::Value = serde_json::from_str(&hooks.state).map_err(|e| {
        Report::new(Step::Hook, libc::EINVAL)
            .path(format!("hooks.{name}"))
            .detail(format!("the state for the hooks is not JSON: {e}"))
    })?;
    if let Some(o) = state.as_object_mut() {
        o.insert("status".into(), status.into());
        o.insert("pid".into(), pid.into());
    }
    let input = serde_json::to_vec(&state).unwrap_or_default();
    for (i, hook) in hooks.hooks.iter().enumerate() {
        let at = format!("hooks.{name}[{i}]");
        run_one(hook, &input, rootfs).map_err(|r| r.path(at.clone()))?;
        trace!(tr, "hook: {at} {} ran", hook.path);
    }
    Ok(())
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Report::new(Step::Hook, libc::EINVAL).detail(format!("its {what} has a NUL byte")))
}

fn run_one(hook: &Hook, input: &[u8], rootfs: Option<&str>) -> Result<()> {
    let path = cstring(&hook.path, "path")?;
    let argv = if hook.args.is_empty() {
        vec![path.clone()]
    } else {
        hook.args.iter().map(|a| cstring(a, "args")).collect::<Result<Vec<_>>>()?
    };
    let envp = hook.env.iter().map(|e| cstring(e, "env")).collect::<Result<Vec<_>>>()?;
    let failed = |errno: Errno, what: &str| Report::new(Step::Hook, errno as i32).detail(format!("{what} for the hook {}", hook.path));
    let (stdin_r, stdin_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| failed(e, "make a pipe"))?;
    // Written by the hook's process when its execve fails; closed by a successful one.
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| failed(e, "make a pipe"))?;
    // SAFETY: this process is single-threaded (a copy of the helper), so the
    // child may do anything; it only dups, closes and execs.
    match unsafe { fork() }.map_err(|e| failed(e, "fork"))? {
        ForkResult::Child => exec_hook(&stdin_r, &err_w, rootfs, &path, &argv, &envp),
        ForkResult::Parent { child } => {
            drop(stdin_r);
            drop(err_w);
            feed(stdin_w, input);
            // What failed before execve, if anything: a stage byte and the errno.
            let mut msg = [0u8; 5];
            // SAFETY: reads at most 5 bytes into msg.
            let n = unsafe { libc::read(err_r.as_raw_fd(), msg.as_mut_ptr().cast(), 5) };
            if n == 5 {
                let _ = waitpid(child, None);
                let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
                return Err(Report::new(Step::Hook, errno).detail(stage_detail(msg[0], rootfs.unwrap_or(""), &hook.path)));
            }
            wait(child, hook)
        }
    }
}

// What the hook's process reports failed before its execve: one stage byte
// each, so that the report names the call.
const STAGE_UNSHARE: u8 = b'u';
const STAGE_OPEN_TREE: u8 = b'o';
const STAGE_UMOUNT_TMP: u8 = b't';
const STAGE_OPEN_ROOTFS: u8 = b'r';
const STAGE_MOVE_MOUNT: u8 = b'm';
const STAGE_STDIN: u8 = b'i';
const STAGE_EXEC: u8 = b'e';

/// What failed in the hook's process before its execve, by stage byte
/// (`rootfs`: createContainer's root path, which two of them name).
fn stage_detail(stage: u8, rootfs: &str, hook: &str) -> String {
    let call = match stage {
        STAGE_UNSHARE => "unshare(CLONE_NEWNS): make the mount namespace of its own".into(),
        STAGE_OPEN_TREE => format!("open_tree({}): copy the assembled root", super::mounts::NEWROOT),
        STAGE_UMOUNT_TMP => "umount2(/tmp, MNT_DETACH): give back the host's /tmp".into(),
        STAGE_OPEN_ROOTFS => format!("open({rootfs}): the root's path, where the assembled root goes"),
        STAGE_MOVE_MOUNT => format!("move_mount: the assembled root onto {rootfs}"),
        STAGE_STDIN => "dup2: the state as stdin".into(),
        _ => return format!("execute the hook {hook}"),
    };
    format!("{call} for the hook {hook}")
}

/// The hook's process: createContainer's view of the mounts (see [`run`]),
/// the state on stdin, no signal blocked or caught, nothing else of ours
/// open, then execve.
fn exec_hook(stdin: &OwnedFd, err: &OwnedFd, rootfs: Option<&str>, path: &CString, argv: &[CString], envp: &[CString]) -> ! {
    let fail = |stage: u8| -> ! {
        let errno = (Errno::last() as i32).to_ne_bytes();
        let msg = [stage, errno[0], errno[1], errno[2], errno[3]];
        // SAFETY: writes 5 bytes to our pipe, then leaves without running anything of the parent's.
        unsafe {
            libc::write(err.as_raw_fd(), msg.as_ptr().cast(), 5);
            libc::_exit(127)
        }
    };
    if let Some(rootfs) = rootfs {
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_err() {
            fail(STAGE_UNSHARE);
        }
        // The assembled root, before the staging tmpfs under it goes.
        let Ok(root) = crate::sys::open_tree_clone(super::mounts::NEWROOT, true) else {
            fail(STAGE_OPEN_TREE)
        };
        if nix::mount::umount2("/tmp", nix::mount::MntFlags::MNT_DETACH).is_err() {
            fail(STAGE_UMOUNT_TMP);
        }
        // Not over the host's own root (a config whose root is /).
        if rootfs != "/" {
            let Ok(at) = nix::fcntl::open(
                rootfs,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ) else {
                fail(STAGE_OPEN_ROOTFS)
            };
            if crate::sys::move_mount_onto(root.as_raw_fd(), at.as_raw_fd()).is_err() {
                fail(STAGE_MOVE_MOUNT);
            }
        }
    }
    super::command::reset_signals();
    // SAFETY: plain system calls on descriptors this process owns; _exit
    // leaves without running anything of the parent's.
    unsafe {
        if libc::dup2(stdin.as_raw_fd(), 0) < 0 {
            fail(STAGE_STDIN);
        }
        // Everything from 3 up closes at exec (the error pipe too: a hook
        // that execs has nothing to report through it).
        super::process::close_range_cloexec(3);
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        let _ = nix::unistd::execve(path, argv, envp);
    }
    fail(STAGE_EXEC)
}

/// Writes the state to the hook's stdin. A hook need not read it: a pipe
/// it closed is no error (SIGPIPE is ignored meanwhile, and restored, since
/// dispositions outlive execve).
fn feed(w: OwnedFd, input: &[u8]) {
    // SAFETY: SIG_IGN and back; nothing else runs in this process meanwhile.
    let old = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    let mut file = std::fs::File::from(w);
    let _ = std::io::Write::write_all(&mut file, input);
    drop(file);
    if let Ok(old) = old {
        // SAFETY: restores what was there.
        let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, old) };
    }
}

/// Waits for the hook, killing it at its timeout.
fn wait(child: Pid, hook: &Hook) -> Result<()> {
    let waited = |e: Errno| Report::new(Step::Hook, e as i32).detail(format!("wait for the hook {}", hook.path));
    let status = match hook.timeout {
        None => reap(child).map_err(waited)?,
        Some(secs) => match ended_within(child, Duration::from_secs(u64::from(secs))).map_err(waited)? {
            Some(status) => status,
            None => {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(Report::new(Step::Hook, libc::ETIMEDOUT)
                    .detail(format!("the hook {} timed out after {secs} s, and was killed", hook.path)));
            }
        },
    };
    match status {
        WaitStatus::Exited(_, 0) => Ok(()),
        WaitStatus::Exited(_, code) => Err(Report::new(Step::Hook, 0).detail(format!("the hook {} exited with status {code}", hook.path))),
        WaitStatus::Signaled(_, sig, _) => Err(Report::new(Step::Hook, 0).detail(format!("the hook {} was ended by {sig}", hook.path))),
        other => Err(Report::new(Step::Hook, libc::EPROTO).detail(format!("wait for the hook {}: {other:?}", hook.path))),
    }
}

/// waitpid until `child` has ended (not stopped or continued).
fn reap(child: Pid) -> std::result::Result<WaitStatus, Errno> {
    loop {
        match waitpid(child, None) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(s),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `child`'s end if it comes within `limit` (reaped), else None (still running).
/// A pidfd says when it has ended; without one (pidfd_open is Linux 5.3, and
/// the startContainer hooks' wait runs under the container's seccomp filter,
/// which may hide it: ENOSYS or EPERM, as for clone3 in helper/clone.rs), a
/// waitpid(WNOHANG) every 5 ms does.
fn ended_within(child: Pid, limit: Duration) -> std::result::Result<Option<WaitStatus>, Errno> {
    let deadline = Instant::now() + limit;
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    if fd < 0 {
        return match Errno::last() {
            Errno::ENOSYS | Errno::EPERM => polled(child, deadline),
            e => Err(e),
        };
    }
    // SAFETY: a new descriptor from the kernel, ours.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up, so that the deadline has passed when poll says it has.
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, alive for the call.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            // Readable: it has ended, and the wait does not block.
            n if n > 0 => return reap(child).map(Some),
            0 if Instant::now() >= deadline => return Ok(None),
            0 => {}
            _ => match Errno::last() {
                Errno::EINTR => {}
                e => return Err(e),
            },
        }
    }
}

/// The fallback of [`ended_within`]: waitpid(WNOHANG) until `deadline`.
fn polled(child: Pid, deadline: Instant) -> std::result::Result<Option<WaitStatus>, Errno> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(Some(s)),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_before_execve_names_its_own_call() {
        let stages = [
            STAGE_UNSHARE,
            STAGE_OPEN_TREE,
            STAGE_UMOUNT_TMP,
            STAGE_OPEN_ROOTFS,
            STAGE_MOVE_MOUNT,
            STAGE_STDIN,
            STAGE_EXEC,
        ];
        let details: Vec<String> = stages.iter().map(|&s| stage_detail(s, "/bundle/rootfs", "/h")).collect();
        let mut unique = details.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), stages.len(), "{details:?}");
        assert!(details[0].starts_with("unshare(CLONE_NEWNS)"));
        assert!(details[1].starts_with("open_tree("));
        assert!(details[2].starts_with("umount2(/tmp"));
        assert_eq!(details[2], "umount2(/tmp, MNT_DETACH): give back the host's /tmp for the hook /h");
        assert_eq!(
            details[3],
            "open(/bundle/rootfs): the root's path, where the assembled root goes for the hook /h"
        );
        assert_eq!(details[4], "move_mount: the assembled root onto /bundle/rootfs for the hook /h");
        assert_eq!(details[6], "execute the hook /h");
    }

    /// A child that sleeps, as the hook's process would.
    fn sleeper(ms: u64) -> Pid {
        // SAFETY: the child only sleeps and _exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                std::thread::sleep(Duration::from_millis(ms));
                // SAFETY: leaves without running the test harness's code.
                unsafe { libc::_exit(7) }
            }
            ForkResult::Parent { child } => child,
        }
    }

    #[test]
    fn the_end_within_the_limit_is_reaped_with_its_status_and_a_longer_run_is_not() {
        let quick = sleeper(0);
        assert_eq!(ended_within(quick, Duration::from_secs(30)), Ok(Some(WaitStatus::Exited(quick, 7))));
        let slow = sleeper(30_000);
        assert_eq!(ended_within(slow, Duration::from_millis(50)), Ok(None));
        kill(slow, Signal::SIGKILL).unwrap();
        assert!(matches!(reap(slow), Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _))));
        // The fallback, the same.
        let quick = sleeper(0);
        assert_eq!(
            polled(quick, Instant::now() + Duration::from_secs(30)),
            Ok(Some(WaitStatus::Exited(quick, 7)))
        );
        let slow = sleeper(30_000);
        assert_eq!(polled(slow, Instant::now() + Duration::from_millis(50)), Ok(None));
        kill(slow, Signal::SIGKILL).unwrap();
        assert!(matches!(reap(slow), Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _))));
    }
}
