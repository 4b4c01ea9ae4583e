//! Starting tsbox-init from the addon with posix_spawn, which glibc and musl
//! implement with a vfork-style clone: the child shares Node's memory until it
//! execs, so nothing is copied (Node's `child_process.spawn` forks, copying the
//! page tables of the whole heap) and no Rust runs in the child. The child gets
//! its stdio, the launch channel on fd 3, a new session, an empty signal mask
//! and default dispositions. The spawn runs on a thread of the addon's, as the
//! vfork-style clone stops the calling thread until the child has exec'd; its
//! exit is awaited on a pidfd, off the main thread too.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};

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

/// How the exited helper ended.
#[napi(object)]
pub struct HelperExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// The helper's pidfd, from its spawn until `waitWeak` takes it (and watches
/// it on the async runtime, never touched from the spawning thread).
type PidFd = Arc<Mutex<Option<OwnedFd>>>;

/// The spawn, done on the addon's spawning thread: its outcome (the pid, or why
/// tsbox-init did not start), for `started()` to wait on in JS and for
/// `waitWeak` to await.
struct Start {
    outcome: Mutex<Option<std::result::Result<i32, String>>>,
    done: Condvar,
    notify: tokio::sync::Notify,
}

impl Start {
    fn finish(&self, outcome: std::result::Result<i32, String>) {
        *self.outcome.lock().unwrap() = Some(outcome);
        self.done.notify_all();
        self.notify.notify_waiters();
    }

    fn wait_blocking(&self) -> std::result::Result<i32, String> {
        let mut outcome = self.outcome.lock().unwrap();
        loop {
            if let Some(o) = outcome.as_ref() {
                return o.clone();
            }
            outcome = self.done.wait(outcome).unwrap();
        }
    }

    async fn wait(&self) -> std::result::Result<i32, String> {
        loop {
            // Made before the check: it gets a notify_waiters() that comes between the two.
            let notified = self.notify.notified();
            if let Some(o) = self.outcome.lock().unwrap().as_ref() {
                return o.clone();
            }
            notified.await;
        }
    }
}

/// A tsbox-init being started, then running.
#[napi]
pub struct HelperProcess {
    start: Arc<Start>,
    pidfd: PidFd,
    /// Our ends of the stdio pipes, until taken by JS.
    pipes: Mutex<[Option<OwnedFd>; 3]>,
}

#[napi]
impl HelperProcess {
    /// The helper's pid once posix_spawn has returned (waiting for it if it
    /// has not yet), or its error: `start PATH: ...` when tsbox-init could not
    /// be started.
    #[napi]
    pub fn started(&self) -> Result<i32> {
        self.start.wait_blocking().map_err(|e| Error::new(Status::GenericFailure, e))
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
    /// A helper whose start failed "exits" with 127, as a shell reports a
    /// command it could not run (`started()` gives the reason).
    /// It does not hold Node's event loop open while it waits: the launch,
    /// then the Container's keep-alive do, until `unref()`.
    #[napi(ts_args_type = "callback: (err: Error | null, exit: HelperExit) => void")]
    pub fn wait_weak(&self, callback: Function<'_, HelperExit, ()>) -> Result<()> {
        let tsfn = callback
            .build_threadsafe_function::<HelperExit>()
            .weak::<true>()
            .callee_handled::<true>()
            .build()?;
        let start = self.start.clone();
        let pidfd = self.pidfd.clone();
        napi::bindgen_prelude::spawn(async move {
            let r = match start.wait().await {
                Ok(pid) => wait_on(pid, pidfd).await,
                Err(_) => Ok(HelperExit {
                    code: Some(127),
                    signal: None,
                }),
            };
            tsfn.call(r, napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }
}

/// Waits on the pidfd in `slot` until the helper has exited, and reaps it.
async fn wait_on(pid: i32, slot: PidFd) -> Result<HelperExit> {
    let Some(owned) = slot.lock().unwrap().take() else {
        return Err(Error::from_reason("tsbox-init was already waited for"));
    };
    // SAFETY: `owned` is a pidfd we own; it stays open as long as the AsyncFd.
    let fd = unsafe { AsyncFd::register(owned) }.map_err(|e| {
        // Not watched, it would never be reaped: kill and reap it now (it is
        // this process's unreaped child, so the pid is still its).
        // SAFETY: kill and waitpid take a pid; no memory is handed over.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        Error::from_reason(format!("watch tsbox-init: {e}"))
    })?;
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

/// What the child's descriptors are made of, all ours: each source is a copy
/// above every target (so no dup2 overwrites a source another still needs),
/// owned by the spawn until it is done, so the caller may close its own
/// descriptors (the channel's end, a log) as soon as `spawn_helper` returns.
struct Spawn {
    path: CString,
    argv: Vec<CString>,
    /// (source, target) for posix_spawn_file_actions_adddup2.
    dups: Vec<(OwnedFd, i32)>,
    /// Targets opened on /dev/null.
    ignored: Vec<i32>,
}

impl Spawn {
    /// posix_spawn, then a pidfd for the child. Runs on the addon's
    /// spawning thread (on_spawner()): a vfork-style spawn stops the calling
    /// thread until the child has exec'd, 0.2 ms here back to back and
    /// ~0.9 ms after an idle spell, which Node's main thread now spends on
    /// the plan instead.
    fn run(self, pidfd: &PidFd) -> std::result::Result<i32, String> {
        let fail = |what: &str, r: libc::c_int| format!("{what}: {} ({})", Errno::from_raw(r).desc(), tsbox_core::errno_name(r));
        // SAFETY: the posix_spawn objects are initialised before use and destroyed
        // on every path below; every pointer handed over outlives the call.
        unsafe {
            let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
            let r = libc::posix_spawn_file_actions_init(&mut actions);
            if r != 0 {
                return Err(fail("posix_spawn_file_actions_init", r));
            }
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            let r = libc::posix_spawnattr_init(&mut attr);
            if r != 0 {
                libc::posix_spawn_file_actions_destroy(&mut actions);
                return Err(fail("posix_spawnattr_init", r));
            }
            let result = (|| -> std::result::Result<i32, String> {
                let devnull = c"/dev/null";
                for &target in &self.ignored {
                    let r = libc::posix_spawn_file_actions_addopen(&mut actions, target, devnull.as_ptr(), libc::O_RDWR, 0);
                    if r != 0 {
                        return Err(fail("posix_spawn_file_actions_addopen", r));
                    }
                }
                for (source, target) in &self.dups {
                    let r = libc::posix_spawn_file_actions_adddup2(&mut actions, source.as_raw_fd(), *target);
                    if r != 0 {
                        return Err(fail("posix_spawn_file_actions_adddup2", r));
                    }
                }
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                let flags = libc::POSIX_SPAWN_SETSID as libc::c_int | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
                for (r, what) in [
                    (libc::posix_spawnattr_setsigmask(&mut attr, &empty), "posix_spawnattr_setsigmask"),
                    (
                        libc::posix_spawnattr_setsigdefault(&mut attr, &all),
                        "posix_spawnattr_setsigdefault",
                    ),
                    (
                        libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short),
                        "posix_spawnattr_setflags",
                    ),
                ] {
                    if r != 0 {
                        return Err(fail(what, r));
                    }
                }
                let mut argv: Vec<*mut libc::c_char> = self.argv.iter().map(|a| a.as_ptr() as *mut libc::c_char).collect();
                argv.push(std::ptr::null_mut());
                let envp = [std::ptr::null_mut::<libc::c_char>()];
                let mut pid: libc::pid_t = 0;
                let r = libc::posix_spawn(&mut pid, self.path.as_ptr(), &actions, &attr, argv.as_ptr(), envp.as_ptr());
                if r != 0 {
                    return Err(fail(&format!("start {}", self.path.to_string_lossy()), r));
                }
                let fd = crate::cgroup::pidfd_open(pid);
                if fd < 0 {
                    // Without a pidfd it could never be reaped here: kill it now.
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                    return Err(fail("pidfd_open (tsbox needs Linux 5.3 or later)", -fd));
                }
                *pidfd.lock().unwrap() = Some(OwnedFd::from_raw_fd(fd as RawFd));
                Ok(pid)
            })();
            libc::posix_spawnattr_destroy(&mut attr);
            libc::posix_spawn_file_actions_destroy(&mut actions);
            // self (the child's sources) is dropped here: the child has its copies.
            result
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the thread that runs the spawns, one after another: its
/// own, made at the first spawn (and again should it have gone), rather than
/// a thread of the async runtime's, which has no runtime to touch here and
/// whose blocking pool Node's teardown would wait for. A job that panics
/// (an unwinding build) is caught and the thread goes on.
fn on_spawner(job: Job) -> Result<()> {
    static SPAWNER: Mutex<Option<std::sync::mpsc::Sender<Job>>> = Mutex::new(None);
    let mut spawner = SPAWNER.lock().unwrap();
    let job = match spawner.as_ref() {
        Some(tx) => match tx.send(job) {
            Ok(()) => return Ok(()),
            Err(std::sync::mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("tsbox-spawn".into())
        .spawn(move || {
            for job in rx {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        .map_err(|e| Error::from_reason(format!("start the addon's spawning thread: {e}")))?;
    tx.send(job)
        .map_err(|_| Error::from_reason("the addon's spawning thread has gone"))?;
    *spawner = Some(tx);
    Ok(())
}

/// Starts `path` (tsbox-init) with `stdio` ("inherit", "pipe", "ignore" or
/// "fd:N" for stdin, stdout, stderr), `channel_fd` as its fd 3, and
/// `preserved` (an OCI runtime's --preserve-fds and LISTEN_FDS) as its fds 4
/// and up, for the container's first process to have as 3 and up. With
/// `exec`, it starts one process in a running container instead
/// (`tsbox-init --exec`).
///
/// Everything that can be wrong with the arguments is reported here; the
/// posix_spawn itself runs on another thread, and `started()` gives its pid
/// or its error. The caller's descriptors are copied first: it may close them
/// when this returns.
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
    // Copies go above every target (0..=3 + preserved), so that no dup2 overwrites a source.
    let floor = 4 + preserved.len() as i32 + 16;
    let above = |fd: i32| -> Result<OwnedFd> {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) returns a new descriptor that we own, or -1.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
        if copy < 0 {
            return Err(err(&format!("duplicate descriptor {fd} (is it open?)"), Errno::last()));
        }
        // SAFETY: copy is a descriptor just made and owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(copy) })
    };
    let mut ours: [Option<OwnedFd>; 3] = [None, None, None];
    let mut dups: Vec<(OwnedFd, i32)> = Vec::new();
    let mut ignored = Vec::new();
    for (i, mode) in stdio.iter().enumerate() {
        let target = i as i32;
        // A descriptor of this process (a detached container's log).
        let given = mode.strip_prefix("fd:").and_then(|n| n.parse::<i32>().ok());
        match (mode.as_str(), given) {
            ("inherit", _) => dups.push((above(target)?, target)),
            ("ignore", _) => ignored.push(target),
            ("pipe", _) => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| err("pipe2", e))?;
                let (child, parent) = if i == 0 { (r, w) } else { (w, r) };
                ours[i] = Some(parent);
                dups.push((above(child.as_raw_fd())?, target));
            }
            (_, Some(fd)) => dups.push((above(fd)?, target)),
            (other, None) => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("stdio[{i}] must be inherit, pipe, ignore or fd:N, not {other}"),
                ))
            }
        }
    }
    dups.push((above(channel_fd)?, 3));
    for (i, fd) in preserved.iter().enumerate() {
        dups.push((above(*fd)?, 4 + i as i32));
    }
    let mut argv = vec![c"tsbox-init".to_owned()];
    if exec == Some(true) {
        argv.push(c"--exec".to_owned());
    } else if !preserved.is_empty() {
        argv.push(c"--preserve-fds".to_owned());
        argv.push(CString::new(preserved.len().to_string()).expect("digits"));
    }
    let spawn = Spawn {
        path: cpath,
        argv,
        dups,
        ignored,
    };
    let start = Arc::new(Start {
        outcome: Mutex::new(None),
        done: Condvar::new(),
        notify: tokio::sync::Notify::new(),
    });
    let pidfd: PidFd = Arc::new(Mutex::new(None));
    let (s, p) = (start.clone(), pidfd.clone());
    on_spawner(Box::new(move || {
        // A panic in the spawn still gives started() and waitWeak an outcome.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spawn.run(&p)))
            .unwrap_or_else(|_| Err("the spawn of tsbox-init panicked".into()));
        s.finish(outcome);
    }))?;
    Ok(HelperProcess {
        start,
        pidfd,
        pipes: Mutex::new(ours),
    })
}
