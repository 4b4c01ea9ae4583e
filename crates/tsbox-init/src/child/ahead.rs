//! A pool's sandbox forks its likely process while it waits for one
//! (`SandboxPlan::expected_process`, the pool's process without a command).
//! The fork, the user's look-up in the container's files, the rlimits, ids,
//! capabilities, no_new_privs and seccomp filter are then all done before
//! the hand-over, off the caller's path.
//!
//! When the process that comes differs from the expected one in nothing but
//! its argv and env, the init first restricts itself the same way (as it
//! would before forking: it is never less restricted than its command once
//! the command runs), then hands the waiting process its argv and env, and
//! that process execs. Otherwise the waiting process is killed and the
//! process is prepared as usual, with the same result and the same errors,
//! and with the pid the waiting process had (see [`fork_expected`]).
//!
//! The waiting process runs nothing of the container's: it is tsbox-init,
//! reading its argv and env from a pipe only the init writes to.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use serde::{Deserialize, Serialize};
use tsbox_core::{ProcessPlan, Report, SandboxPlan, Step};

use super::command::Command;
use super::process::{self, Apply, Context};
use super::users::{self, Resolved};
use crate::channel::Channel;
use crate::trace::{trace, Trace};

/// The largest hand-over the waiting process reads (argv and env are bound
/// by the kernel's ARG_MAX long before this).
const MAX_GIVEN: usize = 64 << 20;

/// What the waiting process gets at the hand-over.
#[derive(Serialize, Deserialize)]
struct Given {
    argv: Vec<String>,
    env: Vec<String>,
}

/// The next process of this pid namespace gets `pid` (free again: its
/// process was reaped). Best effort: a kernel or a state that refuses it
/// leaves the next pid to the kernel.
fn reuse_pid(counter: OwnedFd, pid: Pid, tr: Trace) {
    let set = nix::fcntl::openat(
        &counter,
        "ns_last_pid",
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .and_then(|f| nix::unistd::write(&f, (pid.as_raw() - 1).to_string().as_bytes()));
    if let Err(e) = set {
        trace!(tr, "process: the next pid is the kernel's choice (ns_last_pid: {e})");
    }
}

/// The process forked ahead, as the init holds it.
pub struct Ahead<'a> {
    /// What it was prepared as.
    expected: &'a ProcessPlan,
    pub pid: Pid,
    /// The init's end of the pipe the argv and env go through.
    go: OwnedFd,
    /// Closed by its exec; a failed exec writes a byte first.
    exec_status: OwnedFd,
    /// The user it became, looked up once for both.
    user: Resolved,
    /// The container's `/proc/sys/kernel`, when the init kept it.
    pid_counter: Option<OwnedFd>,
}

/// Whether `expected` can be prepared ahead in this sandbox: under tsbox's
/// init, with nothing that belongs to the moment of the start (a terminal,
/// preserved descriptors, OCI hooks, a seccomp agent).
fn eligible(plan: &SandboxPlan, expected: &ProcessPlan) -> bool {
    plan.init
        && plan.console.is_none()
        && !plan.reparent
        && !plan.detach
        && expected.tty.is_none()
        && expected.start_container_hooks.is_none()
        && expected.seccomp_agent.is_none()
        && crate::helper::PRESERVED_FDS.load(std::sync::atomic::Ordering::Relaxed) == 0
}

/// Forks the expected process, which prepares itself and waits. None when
/// the plan has none, or it cannot be prepared ahead (not eligible, a user
/// the container's files do not know, a pids limit that leaves no room):
/// the hand-over then prepares its process as usual, and reports any error.
/// The bool: this process made its session (the process's, then, whichever
/// way it starts).
///
/// `pid_counter` is the container's own `/proc/sys/kernel` (O_PATH), which
/// the init of a pool's sandbox with a pid namespace of its own opened on
/// its proc mount before /proc/sys was made read-only: the `ns_last_pid` in
/// it is still writable through it. A command the init forks after it has
/// killed the process forked ahead would be PID 3 where a cold container's
/// is PID 2 (`echo $$`). So the init, still unrestricted, sets the
/// namespace's last pid back below the one it reaped (CAP_SYS_ADMIN or
/// CAP_CHECKPOINT_RESTORE over the namespace's user namespace), and the fork
/// that follows gets it again. The descriptor goes at the hand-over,
/// whichever way it goes, before the init restricts itself (which closes
/// everything of the host's): the command never has it.
pub fn fork_expected<'a>(plan: &'a SandboxPlan, pid_counter: Option<OwnedFd>, chan: &Channel, tr: Trace) -> (Option<Ahead<'a>>, bool) {
    let Some(expected) = plan.expected_process.as_deref().filter(|e| eligible(plan, e)) else {
        return (None, false);
    };
    let Ok(user) = users::resolve_in_container(&expected.user) else {
        return (None, false);
    };
    let (Ok((go_rd, go_wr)), Ok((status_rd, status_wr))) = (pipe2(nix::fcntl::OFlag::O_CLOEXEC), pipe2(nix::fcntl::OFlag::O_CLOEXEC))
    else {
        return (None, false);
    };
    // The init's session, which the command joins (as when init forks it later).
    if nix::unistd::setsid().is_err() {
        return (None, false);
    }
    // SAFETY: this process is single-threaded.
    match unsafe { fork() } {
        Err(e) => {
            trace!(tr, "process: not forked ahead ({e}); it is prepared when it comes");
            (None, true)
        }
        Ok(ForkResult::Child) => {
            drop(go_wr);
            drop(status_rd);
            // The init's alone.
            drop(pid_counter);
            wait_and_exec(plan, expected, user, chan, go_rd, status_wr, tr)
        }
        Ok(ForkResult::Parent { child }) => {
            trace!(
                tr,
                "process: forked ahead as PID {child}, prepared as uid {} gid {}",
                user.uid,
                user.gid
            );
            let ahead = Ahead {
                expected,
                pid: child,
                go: go_wr,
                exec_status: status_rd,
                user,
                pid_counter,
            };
            (Some(ahead), true)
        }
    }
}

/// The forked process: prepares itself as `expected`, then waits for its
/// argv and env and execs. Silent on failure: the hand-over finds it gone
/// and prepares its process as usual, which reports what failed.
fn wait_and_exec(plan: &SandboxPlan, expected: &ProcessPlan, user: Resolved, chan: &Channel, go: OwnedFd, status: OwnedFd, tr: Trace) -> ! {
    let how = Apply {
        user: Some(user),
        keep: &[go.as_raw_fd(), status.as_raw_fd()],
        in_session: true,
    };
    let Ok(user) = process::apply(expected, chan, Context::sandbox(plan, None), tr, how) else {
        // SAFETY: ends this process without running anything else.
        unsafe { libc::_exit(125) }
    };
    let Some(given) = read_given(go) else {
        // The init is gone, or took another way.
        // SAFETY: as above.
        unsafe { libc::_exit(125) }
    };
    // Its parent-death signal kept it from outliving the init while it
    // waited; the command forked by init after its preparation has none
    // (fork clears it), and execve would keep it.
    let _ = nix::sys::prctl::set_pdeathsig(None);
    match Command::new(&given.argv, &process::with_home(&given.env, &user)) {
        Ok(cmd) => super::pid1::exec_or_report(&cmd, chan, &status),
        Err(report) => super::pid1::report_and_exit(report, chan, &status),
    }
}

/// Length-prefixed JSON, until the init closes its end.
fn read_given(go: OwnedFd) -> Option<Given> {
    let mut f = std::fs::File::from(go);
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok().filter(|n| *n <= MAX_GIVEN)?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

impl<'a> Ahead<'a> {
    /// The field of `process` that differs from the expected one (argv and
    /// env aside), or None when the process forked ahead can become it.
    pub fn differs(expected: &ProcessPlan, process: &ProcessPlan) -> Option<&'static str> {
        // Every field, named: a new one is decided here before it compiles.
        let ProcessPlan {
            argv: _,
            env: _,
            cwd,
            user,
            capabilities,
            no_new_privileges,
            rlimits,
            seccomp,
            tty,
            trace,
            umask,
            personality,
            io_priority,
            scheduler,
            start_container_hooks,
            memory_policy,
            seccomp_agent,
        } = process;
        let checks: [(&'static str, bool); 15] = [
            ("cwd", *cwd == expected.cwd),
            ("user", *user == expected.user),
            ("capabilities", *capabilities == expected.capabilities),
            ("noNewPrivileges", *no_new_privileges == expected.no_new_privileges),
            ("rlimits", *rlimits == expected.rlimits),
            ("seccomp", *seccomp == expected.seccomp),
            ("tty", *tty == expected.tty),
            ("trace", *trace == expected.trace),
            ("umask", *umask == expected.umask),
            ("personality", *personality == expected.personality),
            ("ioPriority", *io_priority == expected.io_priority),
            ("scheduler", *scheduler == expected.scheduler),
            ("startContainerHooks", *start_container_hooks == expected.start_container_hooks),
            ("memoryPolicy", *memory_policy == expected.memory_policy),
            ("seccompAgent", *seccomp_agent == expected.seccomp_agent),
        ];
        checks.iter().find(|(_, same)| !same).map(|(name, _)| *name)
    }

    /// Whether it has died while it waited (its preparation failed, or the
    /// OOM killer): asked without reaping it (cancel does).
    fn gone(&self) -> bool {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(waitid(Id::Pid(self.pid), flags), Ok(WaitStatus::StillAlive))
    }

    /// Restricts the init like `process` (the user looked up already), when
    /// the process forked ahead can become it; otherwise kills that one and
    /// gives `process` back to be prepared as usual.
    pub fn take(mut self, plan: &SandboxPlan, process: &ProcessPlan, chan: &Channel, tr: Trace) -> Result<Option<Ahead<'a>>, Report> {
        let counter = self.pid_counter.take();
        if let Some(field) = Self::differs(self.expected, process) {
            trace!(
                tr,
                "process: the one forked ahead does not fit (its {field} differs); prepared as usual"
            );
            self.let_go(counter, tr);
            return Ok(None);
        }
        if self.gone() {
            trace!(tr, "process: the one forked ahead is gone; prepared as usual");
            self.let_go(counter, tr);
            return Ok(None);
        }
        drop(counter);
        let how = Apply {
            user: Some(self.user.clone()),
            keep: &[self.go.as_raw_fd(), self.exec_status.as_raw_fd()],
            in_session: true,
        };
        if let Err(r) = process::apply(process, chan, Context::sandbox(plan, None), tr, how) {
            self.cancel();
            return Err(r);
        }
        Ok(Some(self))
    }

    /// Hands it its argv and env: it execs. Returns its pid and the exec
    /// status pipe, or the report of a process that died meanwhile.
    pub fn go(self, process: &ProcessPlan) -> Result<(Pid, OwnedFd), Report> {
        let given = serde_json::to_vec(&Given {
            argv: process.argv.clone(),
            env: process.env.clone(),
        })
        .map_err(|e| Report::new(Step::InitFork, libc::EINVAL).detail(format!("hand the command over: {e}")))?;
        let mut f = std::fs::File::from(self.go);
        let sent = f.write_all(&(given.len() as u64).to_le_bytes()).and_then(|()| f.write_all(&given));
        drop(f);
        if sent.is_err() {
            // It died before it could read them (the OOM killer).
            let _ = kill(self.pid, Signal::SIGKILL);
            let (code, signal) = match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => (Some(code), None),
                Ok(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
                _ => (None, None),
            };
            return Err(crate::helper::monitor::died_before_start(code, signal));
        }
        Ok((self.pid, self.exec_status))
    }

    /// Kills and reaps it, and hands its pid on to the process the init
    /// forks next, as a cold container's command has it.
    fn let_go(self, counter: Option<OwnedFd>, tr: Trace) {
        let pid = self.pid;
        self.cancel();
        if let Some(counter) = counter {
            reuse_pid(counter, pid, tr);
        }
    }

    /// Kills and reaps it.
    fn cancel(self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

#[cfg(test)]
mod tests {
    use tsbox_core::{Rlimit, User};

    use super::Ahead;
    use crate::helper::tests::process;

    #[test]
    fn a_process_fits_when_only_its_argv_and_env_differ() {
        let expected = process();
        let mut call = process();
        call.argv = vec!["sh".into(), "-c".into(), "exit 3".into()];
        call.env = vec!["A=1".into()];
        assert_eq!(Ahead::differs(&expected, &call), None);
    }

    #[test]
    fn any_other_field_names_itself() {
        let expected = process();
        let mut call = process();
        call.user = User {
            user: "1000".into(),
            group: None,
            additional_groups: Vec::new(),
        };
        assert_eq!(Ahead::differs(&expected, &call), Some("user"));
        let mut call = process();
        call.cwd = "/tmp".into();
        assert_eq!(Ahead::differs(&expected, &call), Some("cwd"));
        let mut call = process();
        call.no_new_privileges = false;
        assert_eq!(Ahead::differs(&expected, &call), Some("noNewPrivileges"));
        let mut call = process();
        call.rlimits = vec![Rlimit {
            name: "nofile".into(),
            soft: Some(10),
            hard: Some(10),
        }];
        assert_eq!(Ahead::differs(&expected, &call), Some("rlimits"));
        let mut call = process();
        call.trace = true;
        assert_eq!(Ahead::differs(&expected, &call), Some("trace"));
    }
}
