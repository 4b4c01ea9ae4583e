//! Starting tsbox-init from the addon with posix_spawn, which glibc and musl
//! implement with a vfork-style clone: the child shares Node's memory until it
//! execs, so nothing is copied (Node's `child_process.spawn` forks, copying the
//! page tables of the whole heap) and no Rust runs in the child. The child gets
//! its stdio, the launch channel on fd 3, a new session, an empty signal mask
//! and default dispositions. Its exit is awaited on a pidfd, off the main thread.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nix::errno::Errno;
use tokio::io::unix::AsyncFd;

fn err(what: &str, e: Errno) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("{what}: {} ({})", e.desc(), tsbox_core::errno_name(e as i32)),
    )
}

fn check(r: libc::c_int, what: &str) -> Result<()> {
    // posix_spawn* return the error number instead of setting errno.
    if r != 0 {
        return Err(err(what, Errno::from_raw(r)));
    }
    Ok(())
}

/// How the exited helper ended.
#[napi(object)]
pub struct HelperExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

type PidFd = Arc<Mutex<Option<Arc<AsyncFd<OwnedFd>>>>>;

/// A running tsbox-init.
#[napi]
pub struct HelperProcess {
    pid: i32,
    pidfd: PidFd,
    /// Our ends of the stdio pipes, until taken by JS.
    pipes: Mutex<[Option<OwnedFd>; 3]>,
}

#[napi]
impl HelperProcess {
    #[napi(getter)]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Our end of the pipe for stdio `index` (0, 1, 2), now the caller's to
    /// close; -1 when that stream was not piped or was taken already.
    #[napi]
    pub fn take_pipe(&self, index: u32) -> i32 {
        self.pipes
            .lock()
            .unwrap()
            .get_mut(index as usize)
            .and_then(Option::take)
            .map(IntoRawFd::into_raw_fd)
            .unwrap_or(-1)
    }

    /// Calls `callback(err, exit)` once the helper has exited, and reaps it.
    /// It does not hold Node's event loop open while it waits: the launch,
    /// then the Container's keep-alive do, until `unref()`.
    #[napi(ts_args_type = "callback: (err: Error | null, exit: HelperExit) => void")]
    pub fn wait_weak(&self, callback: Function<'_, HelperExit, ()>) -> Result<()> {
        let tsfn = callback
            .build_threadsafe_function::<HelperExit>()
            .weak::<true>()
            .callee_handled::<true>()
            .build()?;
        let pidfd = self.pidfd.clone();
        napi::bindgen_prelude::spawn(async move {
            let r = wait_on(pidfd).await;
            tsfn.call(r, napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }
}

/// Waits on the pidfd in `slot` until the helper has exited, and reaps it.
async fn wait_on(slot: PidFd) -> Result<HelperExit> {
    let Some(fd) = slot.lock().unwrap().clone() else {
        return Err(Error::from_reason("tsbox-init was already waited for"));
    };
    loop {
        let mut guard = fd
            .readable()
            .await
            .map_err(|e| Error::from_reason(format!("wait for tsbox-init: {e}")))?;
        // SAFETY: siginfo is plain old data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                fd.get_ref().as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if r < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(err("reap tsbox-init", e));
        }
        // SAFETY: waitid filled si_pid and, for an exited child, si_status.
        let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if pid == 0 {
            guard.clear_ready();
            continue;
        }
        slot.lock().unwrap().take();
        return Ok(if code == libc::CLD_EXITED {
            HelperExit {
                code: Some(status),
                signal: None,
            }
        } else {
            HelperExit {
                code: None,
                signal: Some(status),
            }
        });
    }
}

/// Starts `path` (tsbox-init) with `stdio` ("inherit", "pipe" or "ignore" for
/// stdin, stdout, stderr), `channel_fd` as its fd 3, and `preserved` (an OCI
/// runtime's --preserve-fds and LISTEN_FDS) as its fds 4 and up, for the
/// container's first process to have as 3 and up. With `exec`, it starts one
/// process in a running container instead (`tsbox-init --exec`).
#[napi]
pub fn spawn_helper(
    path: String,
    stdio: Vec<String>,
    channel_fd: i32,
    preserved: Option<Vec<i32>>,
    exec: Option<bool>,
) -> Result<HelperProcess> {
    let preserved = preserved.unwrap_or_default();
    if stdio.len() != 3 {
        return Err(Error::new(Status::InvalidArg, "stdio needs three entries"));
    }
    let cpath = CString::new(path.as_str()).map_err(|_| Error::new(Status::InvalidArg, "the helper's path has a NUL byte"))?;
    let devnull = c"/dev/null";
    // SAFETY: the posix_spawn objects are initialised before use and destroyed
    // on every path below; every pointer handed over outlives the call.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions), "posix_spawn_file_actions_init")?;
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr), "posix_spawnattr_init") {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(e);
        }
        let result = (|| -> Result<HelperProcess> {
            let mut ours: [Option<OwnedFd>; 3] = [None, None, None];
            let mut theirs: Vec<OwnedFd> = Vec::new();
            for (i, mode) in stdio.iter().enumerate() {
                match mode.as_str() {
                    // Node marks its own stdio close-on-exec; dup2 onto itself
                    // clears that for the child (POSIX 2008 TC2, glibc and musl).
                    "inherit" => {
                        check(
                            libc::posix_spawn_file_actions_adddup2(&mut actions, i as i32, i as i32),
                            "posix_spawn_file_actions_adddup2",
                        )?;
                    }
                    "ignore" => {
                        check(
                            libc::posix_spawn_file_actions_addopen(&mut actions, i as i32, devnull.as_ptr(), libc::O_RDWR, 0),
                            "posix_spawn_file_actions_addopen",
                        )?;
                    }
                    "pipe" => {
                        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| err("pipe2", e))?;
                        let (child, parent) = if i == 0 { (r, w) } else { (w, r) };
                        check(
                            libc::posix_spawn_file_actions_adddup2(&mut actions, child.as_raw_fd(), i as i32),
                            "posix_spawn_file_actions_adddup2",
                        )?;
                        ours[i] = Some(parent);
                        theirs.push(child);
                    }
                    // A descriptor of this process (a detached container's log).
                    fd if fd.starts_with("fd:") && fd[3..].parse::<i32>().is_ok() => {
                        check(
                            libc::posix_spawn_file_actions_adddup2(&mut actions, fd[3..].parse::<i32>().unwrap(), i as i32),
                            "posix_spawn_file_actions_adddup2",
                        )?;
                    }
                    other => {
                        return Err(Error::new(
                            Status::InvalidArg,
                            format!("stdio[{i}] must be inherit, pipe, ignore or fd:N, not {other}"),
                        ))
                    }
                }
            }
            // The channel and the preserved descriptors are sources and
            // targets at once (3, 4, ...): each is copied above every target
            // first, and the copies are what the child's dup2s take.
            let floor = 4 + preserved.len() as i32 + 16;
            let above = |fd: i32| -> Result<OwnedFd> {
                let copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor);
                if copy < 0 {
                    return Err(err(&format!("duplicate descriptor {fd} (is it open?)"), Errno::last()));
                }
                Ok(OwnedFd::from_raw_fd(copy))
            };
            let channel = above(channel_fd)?;
            check(
                libc::posix_spawn_file_actions_adddup2(&mut actions, channel.as_raw_fd(), 3),
                "posix_spawn_file_actions_adddup2",
            )?;
            let mut copies = Vec::new();
            for (i, fd) in preserved.iter().enumerate() {
                let copy = above(*fd)?;
                check(
                    libc::posix_spawn_file_actions_adddup2(&mut actions, copy.as_raw_fd(), 4 + i as i32),
                    "posix_spawn_file_actions_adddup2",
                )?;
                copies.push(copy);
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            check(libc::posix_spawnattr_setsigmask(&mut attr, &empty), "posix_spawnattr_setsigmask")?;
            check(
                libc::posix_spawnattr_setsigdefault(&mut attr, &all),
                "posix_spawnattr_setsigdefault",
            )?;
            let flags = libc::POSIX_SPAWN_SETSID as libc::c_int | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            check(
                libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short),
                "posix_spawnattr_setflags",
            )?;
            let argv0 = c"tsbox-init";
            let flag = c"--preserve-fds";
            let count = CString::new(preserved.len().to_string()).expect("digits");
            let exec_flag = c"--exec";
            let argv = if exec == Some(true) {
                vec![
                    argv0.as_ptr() as *mut libc::c_char,
                    exec_flag.as_ptr() as *mut libc::c_char,
                    std::ptr::null_mut(),
                ]
            } else if preserved.is_empty() {
                vec![argv0.as_ptr() as *mut libc::c_char, std::ptr::null_mut()]
            } else {
                vec![
                    argv0.as_ptr() as *mut libc::c_char,
                    flag.as_ptr() as *mut libc::c_char,
                    count.as_ptr() as *mut libc::c_char,
                    std::ptr::null_mut(),
                ]
            };
            let envp = [std::ptr::null_mut::<libc::c_char>()];
            let mut pid: libc::pid_t = 0;
            let r = libc::posix_spawn(&mut pid, cpath.as_ptr(), &actions, &attr, argv.as_ptr(), envp.as_ptr());
            drop(theirs);
            drop(channel);
            drop(copies);
            if r != 0 {
                let e = Errno::from_raw(r);
                return Err(Error::new(
                    Status::GenericFailure,
                    format!("start {path}: {} ({})", e.desc(), tsbox_core::errno_name(r)),
                ));
            }
            let fd = crate::cgroup::pidfd_open(pid);
            if fd < 0 {
                let e = Errno::from_raw(-fd);
                // Without a pidfd it could never be reaped here: kill it now.
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                return Err(err("pidfd_open (tsbox needs Linux 5.3 or later)", e));
            }
            let pidfd = OwnedFd::from_raw_fd(fd as RawFd);
            let async_fd = within_runtime_if_available(|| AsyncFd::register(pidfd))
                .map_err(|e| Error::from_reason(format!("watch tsbox-init: {e}")))?;
            Ok(HelperProcess {
                pid,
                pidfd: Arc::new(Mutex::new(Some(Arc::new(async_fd)))),
                pipes: Mutex::new(ours),
            })
        })();
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        result
    }
}
