//! The minimal init that is PID 1 by default: it starts the command, forwards the
//! signals it is sent, reaps every zombie in the namespace, and exits with the
//! command's status once the command has ended. It is restricted like the
//! command (same ids, capabilities, no_new_privs) since it runs after setup.

use std::os::fd::OwnedFd;

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, read, write, ForkResult, Pid};
use tsbox_core::{ChildMsg, ProcessPlan, Report, Step};

use super::command::{exit_code_for, Command};
use crate::channel::Channel;
use crate::trace::{trace, Trace};

/// Signals init passes on to the command.
pub const FORWARDED: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// Returns only with the report of a failure before the command could start.
pub fn run(cmd: Command, chan: &Channel, tty: bool, tr: Trace) -> Report {
    let sfd = match become_init() {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Closed by a successful exec; a failed one writes a byte first.
    let (rd, wr) = match pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Report::new(Step::InitFork, e as i32).detail("create the exec status pipe"),
    };
    // SAFETY: this process is single-threaded.
    let child = match unsafe { fork() } {
        Err(e) => return Report::new(Step::InitFork, e as i32).detail("fork the command from init"),
        Ok(ForkResult::Child) => {
            drop(rd);
            drop(sfd);
            if tty {
                super::pty::take_ctty();
            }
            exec_or_report(&cmd, chan, &wr)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    // The child's stat is read once the pipe has closed, from the /proc the
    // container's processes share: opened now, while the child is at most
    // at its exec, so that what the command could mount over that path later
    // (with CAP_SYS_ADMIN) does not change what this reads.
    let stat = open_stat(child);
    drop(wr);
    supervise_from_exec(child, rd, stat, &sfd, chan, &cmd.name(), "", tr)
}

/// As [`run`], for the process forked ahead ([`super::ahead`]), which
/// waits for its argv and env: it gets them now and execs.
pub fn run_ahead(ahead: super::ahead::Ahead, process: &ProcessPlan, chan: &Channel, tr: Trace) -> Report {
    let sfd = match become_init() {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Opened before it can exec (see run).
    let stat = open_stat(ahead.pid);
    let name = process.argv.first().cloned().unwrap_or_default();
    let (pid, exec_status) = match ahead.go(process) {
        Ok(parts) => parts,
        Err(r) => return r,
    };
    supervise_from_exec(pid, exec_status, stat, &sfd, chan, &name, ", forked ahead", tr)
}

/// The command's side once it is ready: execs, or reports why it could
/// not on the channel and with a byte on `status` (close-on-exec), and exits.
pub fn exec_or_report(cmd: &Command, chan: &Channel, status: &OwnedFd) -> ! {
    report_and_exit(cmd.exec(), chan, status)
}

/// The command's side when it cannot start: `report` on the channel, a byte
/// on `status` (the exec status pipe), and the exit status it maps to.
pub fn report_and_exit(report: Report, chan: &Channel, status: &OwnedFd) -> ! {
    let _ = chan.send(&ChildMsg::Failed(report.clone()));
    let _ = write(status, b"F");
    // SAFETY: ends this process without running anything of the helper's.
    unsafe { libc::_exit(exit_code_for(&report)) }
}

/// What PID 1 is before its command starts: not dumpable (PID 1 never
/// execs: keep /proc/1 closed to the container's processes, which a
/// rootless or --userns host container runs as the same user), with the
/// signals it forwards on a signalfd. They stay blocked (the helper blocked
/// them before clone): a PID 1 only receives signals it handles.
fn become_init() -> Result<SignalFd, Report> {
    let _ = nix::sys::prctl::set_dumpable(false);
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Report::new(Step::InitFork, e as i32).detail("create the init's signalfd"))
}

fn open_stat(child: Pid) -> Option<std::fs::File> {
    std::fs::File::open(format!("/proc/{child}/stat")).ok()
}

/// From the command's exec on: waits for `exec_status` to close (its exec)
/// or to say it failed, reports `started`, forwards signals and reaps until
/// the command has ended, reports how, and exits with its status.
#[allow(clippy::too_many_arguments)]
fn supervise_from_exec(
    child: Pid,
    rd: OwnedFd,
    stat: Option<std::fs::File>,
    sfd: &SignalFd,
    chan: &Channel,
    name: &str,
    how: &str,
    tr: Trace,
) -> Report {
    let mut b = [0u8; 1];
    let exec_failed = matches!(read(&rd, &mut b), Ok(1));
    drop(rd);
    // The pipe also closes when the child dies before its exec (the OOM
    // killer): that is a start failure, not a command that ran. The kernel's
    // PF_FORKNOEXEC tells which, not the child's name: the command may be
    // called tsbox-init too, and end at once.
    let died_in_setup = !exec_failed && stat.as_ref().is_some_and(never_execd);
    drop(stat);
    if died_in_setup {
        let (code, signal) = match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => (Some(code), None),
            Ok(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
            _ => (None, None),
        };
        return crate::helper::monitor::died_before_start(code, signal);
    }
    if !exec_failed {
        trace!(tr, "exec: {} (as PID {} under init{})", name, child, how);
        let _ = chan.send(&ChildMsg::Started);
    }
    let (code, signal) = supervise(child, sfd);
    trace!(
        tr,
        "init: the command ended ({})",
        code.map(|c| format!("status {c}"))
            .unwrap_or_else(|| format!("signal {}", signal.unwrap_or(0)))
    );
    let _ = chan.send(&ChildMsg::Ended { code, signal });
    let status = code.unwrap_or_else(|| 128 + signal.unwrap_or(0));
    // SAFETY: see container::run.
    unsafe { libc::_exit(status) }
}

/// Whether the process whose `/proc/PID/stat` is open as `stat` has not
/// exec'd ([`crate::helper::monitor::never_execd`]); read afresh at offset 0.
fn never_execd(stat: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 1024];
    stat.read_at(&mut buf, 0)
        .is_ok_and(|n| crate::helper::monitor::never_execd(&buf[..n]))
}

/// Forwards signals to `child` and reaps until it has ended.
fn supervise(child: Pid, sfd: &SignalFd) -> (Option<i32>, Option<i32>) {
    loop {
        // Reap everything that is ready: orphans re-parented to us, and the command.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return (Some(code), None),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return (None, Some(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        // SIGCHLD only wakes us to reap; everything else goes to the command.
        if let Ok(Some(info)) = sfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo != libc::SIGCHLD {
                if let Ok(sig) = Signal::try_from(signo) {
                    let _ = kill(child, sig);
                }
            }
        }
    }
}
