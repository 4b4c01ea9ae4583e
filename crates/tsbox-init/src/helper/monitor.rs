//! The monitor: the helper's side of phases 7 to 10. It relays the child's
//! `ready`, `started` and how it ended to Node, hands it its process, delivers
//! signals, serves the control socket (exec, signal, wait from any process),
//! tracks the processes exec'd into the container, and stays until the
//! container's PID 1 has ended and been reaped.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use tsbox_core::{
    CgroupPhase, ChildMsg, ControlRequest, HelperMsg, Namespace, NodeMsg, ProcessPlan, Report, Rusage, SandboxPlan, Step, ToChild,
};

use super::control::Listener;
use super::exec;
use crate::channel::Channel;
use crate::child::command::exit_code_for;
use crate::child::pid1::FORWARDED;
use crate::trace::Trace;

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
            // Gone (ESRCH) means gone: the pid may be another process's by
            // now (a reparented PID 1 is reaped by its own parent).
            if r == 0 || nix::errno::Errno::last() != nix::errno::Errno::ENOSYS {
                return;
            }
        }
        if let Ok(sig) = Signal::try_from(signo) {
            let _ = kill(self.pid, sig);
        }
    }

    /// Waits for the container's PID 1 and returns its wait status and
    /// rusage; None when it is not this process's child (a reparented one:
    /// its parent has them).
    pub fn reap(&self) -> Option<(i32, Rusage)> {
        // SAFETY: siginfo_t is plain old data; a waitid probe with WNOWAIT |
        // WNOHANG reaps nothing.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let probe = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid.as_raw() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
            )
        };
        if probe < 0 && nix::errno::Errno::last() == nix::errno::Errno::ECHILD {
            return None;
        }
        Some(reap(self.pid))
    }
}

/// Waits for `pid` (a child of this process) and returns its wait status and rusage.
pub fn reap(pid: Pid) -> (i32, Rusage) {
    {
        let mut status = 0;
        // SAFETY: rusage is plain old data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid pointers for the duration of the call.
            let r = unsafe { libc::wait4(pid.as_raw(), &mut status, libc::__WALL, &mut ru) };
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

/// A connection on the control socket, and the process it exec'd, if any.
struct Conn {
    chan: Channel,
    exec: Option<Exec>,
    /// Waits for the container's end (`wait`).
    waiting: bool,
    /// Asked for `start`, and waits for `started`.
    starting: bool,
    /// `guard`: the container is killed when this connection closes.
    guard: bool,
    open: bool,
}

struct Exec {
    process: exec::Process,
    detach: bool,
    started: bool,
    failure: Option<Report>,
    chan_open: bool,
    done: bool,
}

/// What the monitor needs of the sandbox for exec.
struct Sandbox {
    /// A descriptor of each of the container's namespaces, from `ready`.
    namespaces: Vec<(Namespace, OwnedFd)>,
    cgroup_dir: Option<OwnedFd>,
    procs: Vec<String>,
}

/// Runs until the container has ended; `process` is the process plan when
/// it came with the plan, `cgroup_dir` the v2 directory for exec'd processes.
/// `at_end` runs once the container's processes are gone, just before the
/// caller hears how it ended.
#[allow(clippy::too_many_arguments)]
pub fn run(
    node: &Channel,
    child: Channel,
    c: &Container,
    plan: &SandboxPlan,
    process: Option<super::Pending>,
    cgroup_dir: Option<OwnedFd>,
    mut log: Option<super::log::Log>,
    tr: &Trace,
    at_end: &dyn Fn(),
) -> Outcome {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();
    let state = super::state::StateFile::beside(plan.control.as_deref());
    // The control socket is how exec, stop and wait reach the container:
    // one that cannot be served is a container that cannot be managed.
    let listener = match plan.control.as_deref().map(|path| (path, Listener::bind(path))) {
        None => None,
        Some((_, Ok(l))) => Some(l),
        Some((path, Err(e))) => {
            c.signal(libc::SIGKILL);
            c.reap();
            let r = Report::new(Step::Start, e as i32)
                .path(path)
                .detail("serve the container's control socket (exec, signals, wait)")
                .hint("the state directory must be writable and on a filesystem that holds unix sockets");
            let status = exit_code_for(&r);
            let caller_gone = node.send(&HelperMsg::Failed(r)).is_err();
            return Outcome { status, caller_gone };
        }
    };
    let procs = match &plan.cgroup {
        CgroupPhase::Place { procs, .. } | CgroupPhase::Enter { procs, .. } => procs.clone(),
        CgroupPhase::CloneInto { procs, .. } if cgroup_dir.is_none() => procs.clone(),
        _ => Vec::new(),
    };
    let mut sandbox = Sandbox {
        namespaces: Vec::new(),
        cgroup_dir,
        procs,
    };
    // Phase 8: the process, when Node sent it with the plan, goes to the
    // child now; it reads it once its sandbox is ready. A created
    // container's is held until `start`.
    let mut process_sent = false;
    let mut held: Option<Box<ProcessPlan>> = None;
    // The command of the process sent to the child: the state names it once
    // it runs (a pooled sandbox's state has none until its process comes,
    // after `ready`).
    let mut command: Option<Vec<String>> = None;
    match process {
        Some(super::Pending::Run(p)) => process_sent = send_process(&child, p, &mut command),
        Some(super::Pending::Hold(p)) => held = Some(p),
        None => {}
    }

    let mut failure: Option<Report> = None;
    let mut ended: Option<(Option<i32>, Option<i32>)> = None;
    let mut usage: Option<Vec<Option<String>>> = None;
    let mut started = false;
    let mut died_in_setup = false;
    let mut child_open = true;
    let mut node_open = true;
    let mut conns: Vec<Conn> = Vec::new();
    loop {
        let mut fds = Vec::with_capacity(8 + 2 * conns.len());
        let pidfd_ix = c.pidfd.as_ref().map(|fd| push(&mut fds, fd.as_fd()));
        let child_ix = child_open.then(|| push(&mut fds, child.as_fd()));
        let node_ix = node_open.then(|| push(&mut fds, node.as_fd()));
        let sig_ix = sfd.as_ref().map(|s| push(&mut fds, s.as_fd()));
        let listen_ix = listener.as_ref().map(|l| push(&mut fds, l.as_fd()));
        let log_ix = log.as_ref().filter(|l| l.open).map(|l| push(&mut fds, l.fd()));
        let mut conn_ix: Vec<(Option<usize>, Option<usize>, Option<usize>)> = Vec::with_capacity(conns.len());
        for k in &conns {
            let conn = k.open.then(|| push(&mut fds, k.chan.as_fd()));
            let (pchan, pfd) = match &k.exec {
                Some(e) if !e.done => (
                    e.chan_open.then(|| push(&mut fds, e.process.chan.as_fd())),
                    e.process.pidfd.as_ref().map(|fd| push(&mut fds, fd.as_fd())),
                ),
                _ => (None, None),
            };
            conn_ix.push((conn, pchan, pfd));
        }
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
        let revents: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        let ready = |ix: Option<usize>| ix.is_some_and(|i| revents[i]);

        if ready(child_ix) {
            match child.recv_fds::<ChildMsg>() {
                // Phase 7: keep the namespaces for exec, tell Node.
                Ok(Some((ChildMsg::Ready { namespaces }, nsfds))) => {
                    sandbox.namespaces = namespaces.into_iter().zip(nsfds).collect();
                    let _ = node.send(&HelperMsg::Ready);
                }
                Ok(Some((ChildMsg::Pty, fds))) => relay_pty(fds, node),
                Ok(Some((ChildMsg::Failed(r), _))) => failure = Some(r),
                Ok(Some((ChildMsg::Started, _))) => {
                    started = true;
                    started_now(c, node, &state, command.as_deref());
                }
                Ok(Some((ChildMsg::Ended { code, signal }, _))) => {
                    ended = Some((code, signal));
                    // The command is over: read its usage while its PID 1
                    // exits (its mount namespace's teardown). What the
                    // command left running, killed with PID 1's exit, may
                    // still add to the peaks in that instant.
                    usage.get_or_insert_with(|| read_usage(&plan.usage_files));
                }
                // Without init, the channel closes on a successful exec, and
                // when the child dies before it: whether it exec'd tells which.
                Ok(None) | Err(_) => {
                    child_open = false;
                    if !started && failure.is_none() {
                        started = closed_by_exec(c, node, &state, command.as_deref());
                        died_in_setup = !started;
                    }
                }
            }
        }
        if ready(node_ix) {
            match node.recv::<NodeMsg>() {
                Ok(Some(NodeMsg::Signal { signo })) => c.signal(signo),
                // Phase 8, when the process comes after `ready` (a sandbox
                // created first, started later).
                Ok(Some(NodeMsg::Process(p))) if !process_sent && held.is_none() => {
                    process_sent = send_process(&child, p, &mut command);
                }
                Ok(Some(NodeMsg::Hold(p))) if !process_sent && held.is_none() => held = Some(p),
                // Node hears `started` or `failed` as for any process.
                Ok(Some(NodeMsg::Start)) => {
                    let _ = start(&mut held, &mut process_sent, &child, &mut command);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    node_open = false;
                    // Whoever started an attached container is gone: the
                    // container goes too. A detached one stays.
                    if !plan.detach {
                        c.signal(libc::SIGKILL);
                    }
                }
            }
        }
        if ready(sig_ix) {
            if let Some(sfd) = &sfd {
                while let Ok(Some(info)) = sfd.read_signal() {
                    c.signal(info.ssi_signo as i32);
                }
            }
        }
        // One chunk per turn: the container's output waits in its pipe
        // while the monitor serves the rest.
        if ready(log_ix) {
            if let Some(l) = log.as_mut() {
                l.pump();
            }
        }
        if ready(listen_ix) {
            if let Some(conn) = listener.as_ref().and_then(Listener::accept) {
                conns.push(Conn {
                    chan: conn,
                    exec: None,
                    waiting: false,
                    starting: false,
                    guard: false,
                    open: true,
                });
            }
        }
        for (k, (conn_i, pchan_i, pfd_i)) in conns.iter_mut().zip(conn_ix) {
            // Exec only into a started container: before, PID 1 is still
            // tsbox's, privileged, which nothing of the container may see.
            if ready(conn_i) && serve(k, c, &sandbox, started && ended.is_none() && failure.is_none(), tr) {
                // `start`: the held process goes to the child; this client
                // hears `started` (below) or how the container ended.
                match start(&mut held, &mut process_sent, &child, &mut command) {
                    Ok(()) => k.starting = true,
                    Err(r) => {
                        let _ = k.chan.send(&HelperMsg::Failed(r));
                    }
                }
            }
            if let Some(e) = k.exec.as_mut() {
                if ready(pchan_i) {
                    relay_exec(e, &k.chan);
                }
                if ready(pfd_i) {
                    finish_exec(e, &k.chan);
                }
            }
        }
        if started {
            for k in conns.iter_mut().filter(|k| k.starting) {
                k.starting = false;
                let _ = k.chan.send(&HelperMsg::Started { pid: c.pid.as_raw() });
            }
        }
        conns.retain(|k| k.open || k.exec.as_ref().is_some_and(|e| !e.done));

        let exited = if ready(pidfd_ix) {
            true
        } else if pidfd_ix.is_none() {
            child_has_exited(c.pid)
        } else {
            false
        };
        if exited {
            // Drain what the child wrote before it exited, then stop. Its
            // terminal still goes to Node, before the exit: a command that
            // ended at once printed to it.
            while child_open {
                match child.recv_fds_nonblocking::<ChildMsg>() {
                    Ok(Some((ChildMsg::Failed(r), _))) => failure = Some(r),
                    Ok(Some((ChildMsg::Ended { code, signal }, _))) => ended = Some((code, signal)),
                    Ok(Some((ChildMsg::Started, _))) => started = true,
                    Ok(Some((ChildMsg::Pty, fds))) => relay_pty(fds, node),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        if !started && failure.is_none() {
                            started = closed_by_exec(c, node, &state, command.as_deref());
                            died_in_setup = !started;
                        }
                        child_open = false;
                    }
                }
            }
            break;
        }
    }
    crate::trace::trace!(tr, "monitor: PID 1 has exited");
    // Every process exec'd into the container is gone with its pid
    // namespace; reap them so that PID 1's own end completes.
    for k in conns.iter_mut() {
        if let Some(e) = k.exec.as_mut() {
            if !e.done {
                let _ = kill(e.process.pid, Signal::SIGKILL);
                finish_exec(e, &k.chan);
            }
        }
    }
    // What the container wrote before it ended is all in the log before
    // its state says `stopped` (tsbox logs -f stops there).
    if let Some(l) = log.as_mut() {
        l.finish();
    }
    // A reparented PID 1 is its parent's to reap: how it ended is theirs.
    let reaped = c.reap();
    let (code, signal) = ended.unwrap_or_else(|| reaped.map(|(status, _)| decode_status(status)).unwrap_or((None, None)));
    let rusage = reaped.map(|(_, r)| r).unwrap_or_default();
    let result = if let Some(r) = failure {
        Err(r)
    } else if died_in_setup || (!started && ended.is_none()) {
        // It ended before the command started and before it could report why
        // (a signal: the OOM killer, or one from outside): a start failure.
        Err(died_before_start(code, signal))
    } else {
        Ok(HelperMsg::Exited {
            code,
            signal,
            rusage,
            usage: usage.unwrap_or_else(|| read_usage(&plan.usage_files)),
        })
    };
    let (msg, status) = match result {
        Err(r) => (HelperMsg::Failed(r.clone()), exit_code_for(&r)),
        Ok(msg) => (msg, code.unwrap_or_else(|| 128 + signal.unwrap_or(0))),
    };
    let known = reaped.is_some() || ended.is_some();
    // The state first, so that whoever the caller or a waiter tells reads
    // `stopped`; then the caller and the waiters; then the socket goes. An
    // attached container's state goes with it (its caller removes it, or
    // the helper when the caller is gone): written only for a waiter then.
    let waiters = conns.iter().any(|k| (k.waiting || k.starting) && k.open);
    if plan.detach || waiters {
        state.update(|s| {
            s.insert("status".into(), "stopped".into());
            if known {
                s.insert("exitCode".into(), status.into());
            }
            s.insert(
                "exitSignal".into(),
                signal.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null),
            );
            s.insert("finishedAtMs".into(), super::state::now_ms().into());
            if let HelperMsg::Failed(r) = &msg {
                s.insert("error".into(), r.to_string().into());
            }
        });
    }
    at_end();
    let caller_gone = !node_open || node.send(&msg).is_err();
    // Waiters, and a `start` whose process never started, hear how it ended.
    for k in conns.iter().filter(|k| (k.waiting || k.starting) && k.open) {
        let _ = k.chan.send(&msg);
    }
    if let Some(path) = &plan.control {
        let _ = std::fs::remove_file(path);
    }
    Outcome { status, caller_gone }
}

/// `start`: the held process goes to the child, once.
fn start(held: &mut Option<Box<ProcessPlan>>, sent: &mut bool, child: &Channel, command: &mut Option<Vec<String>>) -> Result<(), Report> {
    match held.take() {
        Some(p) => {
            *sent = send_process(child, p, command);
            Ok(())
        }
        None if *sent => Err(Report::new(Step::Start, libc::EBUSY)
            .detail("the container was started already")
            .hint("a container's process runs once; create another container")),
        None => Err(Report::new(Step::Start, libc::EINVAL)
            .detail("the container has no process to start")
            .hint("it was not created to be started later (create, not run)")),
    }
}

/// Phase 8: `p` to the child, its argv kept as `command` for the running
/// state; whether it was sent.
fn send_process(child: &Channel, p: Box<ProcessPlan>, command: &mut Option<Vec<String>>) -> bool {
    *command = Some(p.argv.clone());
    child.send(&ToChild::Process(p)).is_ok()
}

/// The child's channel closed without a report: by its exec (the channel is
/// close-on-exec), or by its death before it. The kernel's flag for a
/// process that has not exec'd tells which ([`never_execd`]); with init,
/// PID 1 never execs and says `started` itself, so a close before that is
/// its death in setup. Returns whether it started.
fn closed_by_exec(c: &Container, node: &Channel, state: &super::state::StateFile, command: Option<&[String]>) -> bool {
    if still_setting_up(c.pid) {
        return false;
    }
    started_now(c, node, state, command);
    true
}

/// Phase 9: the state, then Node: whoever Node tells reads `running` (pid
/// and monitor too: a container whose process came with its plan was never
/// written `created`), and the command that runs (`tsbox ps`; a pooled
/// sandbox's state had none until its process came).
fn started_now(c: &Container, node: &Channel, state: &super::state::StateFile, command: Option<&[String]>) {
    state.update(|s| {
        s.insert("pid".into(), c.pid.as_raw().into());
        super::state::name_monitor(s);
        s.insert("status".into(), "running".into());
        if let Some(argv) = command {
            s.insert("command".into(), argv.into());
        }
    });
    let _ = node.send(&HelperMsg::Started { pid: c.pid.as_raw() });
}

/// Adds `fd` to the poll set; its index.
fn push<'a>(fds: &mut Vec<PollFd<'a>>, fd: std::os::fd::BorrowedFd<'a>) -> usize {
    fds.push(PollFd::new(fd, PollFlags::POLLIN));
    fds.len() - 1
}

/// One request on a control connection; true for `start`, which the
/// caller handles (it owns the held process). `running`: its process has
/// started and not ended.
fn serve(k: &mut Conn, c: &Container, sandbox: &Sandbox, running: bool, tr: &Trace) -> bool {
    let (req, fds) = match k.chan.recv_fds::<ControlRequest>() {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => {
            k.open = false;
            // A caller that is gone takes its attached exec with it.
            if let Some(e) = &k.exec {
                if !e.detach && !e.done {
                    let _ = kill(e.process.pid, Signal::SIGKILL);
                }
            }
            // A guard that is gone takes the container with it.
            if k.guard {
                crate::trace::trace!(tr, "control: the guard's connection closed; the container is killed");
                c.signal(libc::SIGKILL);
            }
            return false;
        }
    };
    match req {
        ControlRequest::Signal { signo } => match &k.exec {
            Some(e) if !e.done => {
                if let Ok(sig) = Signal::try_from(signo) {
                    let _ = kill(e.process.pid, sig);
                }
            }
            _ => c.signal(signo),
        },
        ControlRequest::Wait => k.waiting = true,
        ControlRequest::Guard => k.guard = true,
        ControlRequest::Start => return true,
        ControlRequest::Namespaces => {
            if !running || sandbox.namespaces.is_empty() {
                let _ = k.chan.send(&HelperMsg::Failed(not_running()));
                return false;
            }
            let mut fds: Vec<RawFd> = sandbox.namespaces.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
            fds.extend(sandbox.cgroup_dir.as_ref().map(AsRawFd::as_raw_fd));
            let _ = k.chan.send_fds(
                &HelperMsg::Namespaces {
                    namespaces: sandbox.namespaces.iter().map(|(n, _)| *n).collect(),
                    procs: sandbox.procs.clone(),
                    cgroup_dir: sandbox.cgroup_dir.is_some(),
                },
                &fds,
            );
        }
        ControlRequest::Exec { process, detach } => {
            if k.exec.is_some() {
                let _ = k.chan.send(&HelperMsg::Failed(
                    Report::new(Step::Start, libc::EPROTO)
                        .detail("a second exec request on one control connection")
                        .hint("a control connection runs one exec; connect again for another (a tsbox bug if tsbox sent it)"),
                ));
                return false;
            }
            if !running || sandbox.namespaces.is_empty() {
                let _ = k.chan.send(&HelperMsg::Failed(not_running()));
                return false;
            }
            let cgroup = exec::Cgroup {
                dir: sandbox.cgroup_dir.as_ref().map(AsRawFd::as_raw_fd),
                procs: &sandbox.procs,
            };
            match exec::spawn(&process, &fds, &sandbox.namespaces, &cgroup, true, *tr) {
                Ok(p) => {
                    k.exec = Some(Exec {
                        process: p,
                        detach,
                        started: false,
                        failure: None,
                        chan_open: true,
                        done: false,
                    })
                }
                Err(r) => {
                    let _ = k.chan.send(&HelperMsg::Failed(r));
                }
            }
        }
    }
    false
}

/// Hands a terminal's master that came from a container process on to
/// `to` (Node, or the client of an exec); ours closes when `fds` goes.
pub fn relay_pty(fds: Vec<OwnedFd>, to: &Channel) {
    if let Some(master) = fds.into_iter().next() {
        let _ = to.send_fds(&HelperMsg::Pty, &[master.as_raw_fd()]);
    }
}

/// The reply to an exec (or its namespaces) when the container's process is not running.
fn not_running() -> Report {
    Report::new(Step::Join, libc::ESRCH)
        .detail("the container is not running")
        .hint("exec needs a container whose process has started and not ended")
}

/// What an exec'd process reports before it execs: its pty, its failure,
/// and (by closing its channel at exec) that it started.
fn relay_exec(e: &mut Exec, client: &Channel) {
    match e.process.chan.recv_fds::<ChildMsg>() {
        Ok(Some((ChildMsg::Pty, fds))) => relay_pty(fds, client),
        Ok(Some((ChildMsg::Failed(r), _))) => e.failure = Some(r),
        Ok(Some(_)) => {}
        Ok(None) | Err(_) => {
            e.chan_open = false;
            if e.failure.is_none() && !still_setting_up(e.process.pid) {
                e.started = true;
                let _ = client.send(&HelperMsg::Started {
                    pid: e.process.pid.as_raw(),
                });
            }
        }
    }
}

/// The contents of the cgroup files the result reports (SandboxPlan::usage_files):
/// at most 4 KiB of each, None for one that cannot be read.
fn read_usage(files: &[String]) -> Vec<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    files
        .iter()
        .map(|path| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .ok()?;
            let mut buf = Vec::with_capacity(256);
            f.take(4096).read_to_end(&mut buf).ok()?;
            Some(String::from_utf8_lossy(&buf).into_owned())
        })
        .collect()
}

/// The exec'd process has ended: reap it and tell the client how.
fn finish_exec(e: &mut Exec, client: &Channel) {
    if e.chan_open {
        relay_exec(e, client);
    }
    let (status, rusage) = reap(e.process.pid);
    e.done = true;
    let (code, signal) = decode_status(status);
    let msg = match e.failure.take() {
        Some(r) => HelperMsg::Failed(r),
        None if !e.started => HelperMsg::Failed(died_before_start(code, signal)),
        None => HelperMsg::Exited {
            code,
            signal,
            rusage,
            usage: Vec::new(),
        },
    };
    let _ = client.send(&msg);
}

/// True while `pid` is still the helper's copy, before it execs anything.
/// Asked once its close-on-exec channel (or pipe) has closed, which happens
/// at its execve or at its exit (the OOM killer during setup): see
/// [`never_execd`]. One already reaped (nothing to read) counts as started.
pub fn still_setting_up(pid: Pid) -> bool {
    std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .is_some_and(|stat| never_execd(&stat))
}

/// `/proc/PID/stat` of a process that fork or clone made: whether it has
/// not exec'd. PF_FORKNOEXEC is set by fork and clone and cleared only by
/// execve, in begin_new_exec before it closes the close-on-exec descriptors,
/// and a zombie keeps it: a channel that closed with the flag still set
/// closed by an exit before any exec. The flags are the kernel's: nothing a
/// command does after its exec sets the flag again (its own children have
/// pids of their own), and neither does the name it runs under (`tsbox-init`
/// included), which is all the container's to choose.
pub fn never_execd(stat: &[u8]) -> bool {
    const PF_FORKNOEXEC: u64 = 0x40;
    let Some((_, mut fields)) = super::state::stat_fields(stat) else {
        return false;
    };
    // After the name: state ppid pgrp session tty_nr tpgid flags.
    fields
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|f| f & PF_FORKNOEXEC != 0)
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

pub fn decode_status(status: i32) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (Some(125), None)
    }
}
