//! The helper's side after `go` (DESIGN.md, sync point 5): relay the child's
//! reports to Node, deliver signals, wait for the container to end, report how.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use tsbox_core::{ChildMsg, HelperMsg, Report, Rusage, Step};

use crate::channel::Channel;
use crate::exec::exit_code_for;
use crate::init::FORWARDED;

pub struct Container {
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
}

impl Container {
    pub fn signal(&self, signo: i32) {
        if let Some(fd) = &self.pidfd {
            // SAFETY: pidfd_send_signal with a null siginfo.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signo,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if r == 0 {
                return;
            }
        }
        if let Ok(sig) = Signal::try_from(signo) {
            let _ = kill(self.pid, sig);
        }
    }

    /// Waits for the container's PID 1 and returns its wait status and rusage.
    pub fn reap(&self) -> (i32, Rusage) {
        let mut status = 0;
        // SAFETY: rusage is plain old data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid pointers for the duration of the call.
            let r = unsafe { libc::wait4(self.pid.as_raw(), &mut status, libc::__WALL, &mut ru) };
            if r >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                break;
            }
        }
        let usec = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
        (
            status,
            Rusage {
                user_usec: usec(ru.ru_utime),
                system_usec: usec(ru.ru_stime),
                max_rss_kib: ru.ru_maxrss as u64,
            },
        )
    }
}

/// How the container ended, as the helper's own exit status, and whether
/// whoever started it is gone (then nobody else tears down what it held).
pub struct Outcome {
    pub status: i32,
    pub caller_gone: bool,
}

/// Runs until the container has ended.
pub fn run(node: &Channel, child: Channel, c: &Container, tr: &crate::trace::Trace) -> Outcome {
    let status = watch(node, child, c, tr);
    // A caller that is gone can no longer be written to: the check is a send.
    Outcome { status: status.0, caller_gone: !status.1 }
}

fn watch(node: &Channel, child: Channel, c: &Container, tr: &crate::trace::Trace) -> (i32, bool) {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();

    let mut failure: Option<Report> = None;
    let mut ended: Option<(Option<i32>, Option<i32>)> = None;
    let mut started = false;
    let mut died_in_setup = false;
    let mut child_open = true;
    let mut node_open = true;
    loop {
        let mut fds = Vec::with_capacity(4);
        let pidfd_ix = c.pidfd.as_ref().map(|fd| {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let child_ix = child_open.then(|| {
            fds.push(PollFd::new(child.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let node_ix = node_open.then(|| {
            fds.push(PollFd::new(node.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let sig_ix = sfd.as_ref().map(|s| {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        // Without a pidfd (very old kernels), poll with a timeout and check.
        let timeout = if pidfd_ix.is_some() {
            PollTimeout::NONE
        } else {
            PollTimeout::from(50u16)
        };
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let ready = |ix: Option<usize>| ix.and_then(|i| fds[i].revents()).is_some_and(|r| !r.is_empty());
        let (pid_ready, child_ready, node_ready, sig_ready) = (ready(pidfd_ix), ready(child_ix), ready(node_ix), ready(sig_ix));
        drop(fds);

        if child_ready {
            match child.recv_fds::<ChildMsg>() {
                Ok(Some((ChildMsg::Pty, fds))) => {
                    if let Some(master) = fds.into_iter().next() {
                        let _ = node.send_fds(&HelperMsg::Pty, &[master.as_raw_fd()]);
                    }
                }
                Ok(Some((ChildMsg::Failed(r), _))) => failure = Some(r),
                Ok(Some((ChildMsg::Started, _))) => {
                    started = true;
                    let _ = node.send(&HelperMsg::Started);
                }
                Ok(Some((ChildMsg::Ended { code, signal }, _))) => ended = Some((code, signal)),
                // Without init, the channel closes on a successful exec, and
                // when the child dies before it: its name tells which.
                Ok(None) | Err(_) => {
                    child_open = false;
                    if !started && failure.is_none() {
                        if still_setting_up(c.pid) {
                            died_in_setup = true;
                        } else {
                            started = true;
                            let _ = node.send(&HelperMsg::Started);
                        }
                    }
                }
            }
        }
        if node_ready {
            match node.recv::<tsbox_core::NodeMsg>() {
                Ok(Some(tsbox_core::NodeMsg::Signal { signo })) => c.signal(signo),
                Ok(Some(_)) => {}
                // Whoever started us is gone: the container goes too.
                Ok(None) | Err(_) => {
                    node_open = false;
                    c.signal(libc::SIGKILL);
                }
            }
        }
        if sig_ready {
            if let Some(sfd) = &sfd {
                while let Ok(Some(info)) = sfd.read_signal() {
                    c.signal(info.ssi_signo as i32);
                }
            }
        }
        let exited = if pid_ready {
            true
        } else if pidfd_ix.is_none() {
            child_has_exited(c.pid)
        } else {
            false
        };
        if exited && !child_open {
            break;
        }
        if exited {
            // Drain what the child wrote before it exited, then stop.
            while let Ok(Some((msg, _))) = child.recv_fds_nonblocking::<ChildMsg>() {
                match msg {
                    ChildMsg::Failed(r) => failure = Some(r),
                    ChildMsg::Ended { code, signal } => ended = Some((code, signal)),
                    ChildMsg::Started | ChildMsg::Pty => {}
                }
            }
            break;
        }
    }
    crate::trace::trace!(tr, "monitor: PID 1 has exited");
    let (status, rusage) = c.reap();
    if let Some(r) = failure {
        let code = exit_code_for(&r);
        let _ = node.send(&HelperMsg::Failed(r));
        return (code, node_open);
    }
    let (code, signal) = ended.unwrap_or_else(|| decode_status(status));
    if died_in_setup || (!started && ended.is_none()) {
        // It ended before the command started and before it could report why
        // (a signal: the OOM killer, or one from outside): a start failure.
        let r = died_before_start(code, signal);
        let code = exit_code_for(&r);
        let _ = node.send(&HelperMsg::Failed(r));
        return (code, node_open);
    }
    let _ = node.send(&HelperMsg::Exited { code, signal, rusage });
    (code.unwrap_or_else(|| 128 + signal.unwrap_or(0)), node_open)
}

/// True while `pid` is still the helper's copy, before it execs anything: its
/// name is tsbox-init's until execve renames it, which the kernel does before
/// it closes the close-on-exec channel. The name of a zombie stays readable.
pub fn still_setting_up(pid: Pid) -> bool {
    std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let open = stat.iter().position(|b| *b == b'(')?;
            let close = stat.iter().rposition(|b| *b == b')')?;
            Some(stat.get(open + 1..close)? == b"tsbox-init")
        })
        .unwrap_or(false)
}

/// The report of a container whose first process ended during its setup
/// without saying why.
pub fn died_before_start(code: Option<i32>, signal: Option<i32>) -> Report {
    let how = match (code, signal) {
        (_, Some(sig)) => format!("was killed by signal {sig}{}", if sig == libc::SIGKILL { " (SIGKILL)" } else { "" }),
        (Some(code), None) => format!("exited with status {code}"),
        (None, None) => "ended".to_string(),
    };
    Report::new(Step::Start, 0)
        .detail(format!(
            "the container's first process {how} during its setup, before the command started"
        ))
        .hint(if signal == Some(libc::SIGKILL) {
            "SIGKILL during setup is most often the OOM killer: the memory limit must leave the container a few MB to start in"
        } else {
            "something outside the container signalled it, or tsbox-init crashed; run with --trace to see the last step"
        })
}

fn child_has_exited(pid: Pid) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    matches!(
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT),
        Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..))
    )
}

fn decode_status(status: i32) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (Some(125), None)
    }
}

/// A failure before the child existed or before it was let go.
pub fn fail(node: &Channel, report: Report) -> i32 {
    let code = exit_code_for(&report);
    let _ = node.send(&HelperMsg::Failed(report));
    code
}

pub fn report(step: Step, errno: i32, detail: &str) -> Report {
    Report::new(step, errno).detail(detail.to_string())
}
