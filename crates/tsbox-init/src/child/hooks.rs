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
                let what = if msg[0] == b'e' {
                    "execute the hook"
                } else {
                    "give back the host's /tmp to the hook"
                };
                return Err(Report::new(Step::Hook, errno).detail(format!("{what} {}", hook.path)));
            }
            wait(child, hook)
        }
    }
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
            fail(b't');
        }
        // The assembled root, before the staging tmpfs under it goes.
        let Ok(root) = crate::sys::open_tree_clone(super::mounts::NEWROOT, true) else {
            fail(b't')
        };
        if nix::mount::umount2("/tmp", nix::mount::MntFlags::MNT_DETACH).is_err() {
            fail(b't');
        }
        // Not over the host's own root (a config whose root is /).
        if rootfs != "/" {
            match nix::fcntl::open(
                rootfs,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ) {
                Ok(at) if crate::sys::move_mount_onto(root.as_raw_fd(), at.as_raw_fd()).is_ok() => {}
                _ => fail(b't'),
            }
        }
    }
    super::command::reset_signals();
    // SAFETY: plain system calls on descriptors this process owns; _exit
    // leaves without running anything of the parent's.
    unsafe {
        if libc::dup2(stdin.as_raw_fd(), 0) < 0 {
            fail(b'e');
        }
        // Everything from 3 up closes at exec (the error pipe too: a hook
        // that execs has nothing to report through it).
        super::process::close_range_cloexec(3);
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        let _ = nix::unistd::execve(path, argv, envp);
    }
    fail(b'e')
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
    let deadline = hook.timeout.map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
    loop {
        let flags = if deadline.is_some() { Some(WaitPidFlag::WNOHANG) } else { None };
        match waitpid(child, flags) {
            Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(WaitStatus::Exited(_, code)) => {
                return Err(Report::new(Step::Hook, 0).detail(format!("the hook {} exited with status {code}", hook.path)))
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Err(Report::new(Step::Hook, 0).detail(format!("the hook {} was ended by {sig}", hook.path)))
            }
            Ok(WaitStatus::StillAlive) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(Report::new(Step::Hook, libc::ETIMEDOUT).detail(format!(
                        "the hook {} timed out after {} s, and was killed",
                        hook.path,
                        hook.timeout.unwrap_or(0)
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Report::new(Step::Hook, e as i32).detail(format!("wait for the hook {}", hook.path))),
        }
    }
}
