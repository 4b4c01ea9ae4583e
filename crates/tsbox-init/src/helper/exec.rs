//! Exec into a running container, done by its monitor for a control
//! connection. Three processes, as runc's exec:
//!
//! - the monitor (or `tsbox-init --exec`, [`for_node`]) forks an
//!   intermediate, still in the host's namespaces, which makes itself not
//!   dumpable first: the process it clones inherits that;
//! - the intermediate joins the container's user namespace (where it then may
//!   join the others) and its pid namespace, and clones the process with
//!   CLONE_PARENT, so the monitor is its parent and reaps it (and, on v2, with
//!   CLONE_INTO_CGROUP, straight into the container's cgroup); it tells the
//!   monitor the pid and exits;
//! - the process joins the remaining namespaces ([`crate::child::join`]),
//!   waits until the monitor has placed it in the container's v1 cgroups,
//!   prepares itself as its [`ProcessPlan`] says and execs.
//!
//! Every namespace is joined through a descriptor the container's PID 1 gave
//! at `ready`: no pid is named, and no ptrace check against PID 1 applies.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;
use tsbox_core::{ChildMsg, HelperMsg, Namespace, NodeMsg, ProcessPlan, Report, Step, ToChild};

use super::clone::{clone_container, Forked};
use super::monitor::relay_pty;
use crate::channel::Channel;
use crate::child;
use crate::trace::Trace;

/// A process exec'd into the container, as the monitor tracks it.
pub struct Process {
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
    /// The monitor's end of the process's channel (reports, its pty).
    pub chan: Channel,
}

/// Where the container's cgroup is, for its exec'd processes.
pub struct Cgroup<'a> {
    /// The v2 directory (CLONE_INTO_CGROUP).
    pub dir: Option<RawFd>,
    /// The `cgroup.procs` files to write the pid to where clone3 did not place it.
    pub procs: &'a [String],
}

/// Starts `process` in the container. `stdio` are the caller's stdin, stdout
/// and stderr (empty with a tty: the process makes its own in the container).
/// With `pdeathsig` it is killed when this process (its parent) ends.
pub fn spawn(
    process: &ProcessPlan,
    stdio: &[OwnedFd],
    ns: &[(Namespace, OwnedFd)],
    cgroup: &Cgroup<'_>,
    pdeathsig: bool,
    tr: Trace,
) -> Result<Process, Report> {
    let fail = |e: nix::errno::Errno, what: &str| Report::new(Step::Join, e as i32).detail(what.to_string());
    let (mine, theirs) = Channel::pair().map_err(|e| fail(e, "create the exec channel"))?;
    // SAFETY: this process is single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(|e| fail(e, "fork the exec intermediate"))? {
        nix::unistd::ForkResult::Child => {
            // Before any setns: the process this intermediate clones is in
            // the container's pid namespace from its first instruction, with
            // the monitor's host root, cwd, descriptors and ids, and inherits
            // this flag. Dumpable, a container process with CAP_SYS_PTRACE
            // in its user namespace could follow /proc/PID/root or cwd into
            // the host while it waits to be placed. Not dumpable, the kernel
            // asks for CAP_SYS_PTRACE in the user namespace of its memory,
            // the host's. Its credential changes keep it so; its execve of
            // the command makes the command dumpable again.
            let _ = nix::sys::prctl::set_dumpable(false);
            drop(mine);
            intermediate(process, stdio, ns, cgroup, theirs, pdeathsig, tr)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            // The intermediate exits once it has cloned the process.
            let status = nix::sys::wait::waitpid(child, None);
            let pid = match mine.recv::<Intermediate>() {
                Ok(Some(Intermediate::Cloned { pid })) => Pid::from_raw(pid),
                // What it could not do (join the user or pid namespace, clone), as it said.
                Ok(Some(Intermediate::Failed(r))) => return Err(r),
                Ok(None) => {
                    return Err(Report::new(Step::Join, 0).detail(format!("the exec intermediate ended ({status:?}) without a process")));
                }
                Err(e) => return Err(Report::new(Step::Join, e.errno()).detail(e.to_string())),
            };
            let pidfd = pidfd_open(pid);
            if !cgroup.procs.is_empty() && cgroup.dir.is_none() {
                if let Err(r) = super::cgroup::place(cgroup.procs, pid, &tr) {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    // Reaped here: it is the monitor's child (CLONE_PARENT), and nobody tracks it.
                    super::monitor::reap(pid);
                    return Err(r);
                }
            }
            let _ = mine.send(&ToChild::Placed);
            Ok(Process { pid, pidfd, chan: mine })
        }
    }
}

/// The intermediate's one message to the monitor: the process it cloned, or
/// why it could not.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
enum Intermediate {
    Cloned { pid: i32 },
    Failed(Report),
}

/// Reports `r` to the monitor and ends the intermediate.
fn intermediate_failed(chan: &Channel, r: Report) -> ! {
    let _ = chan.send(&Intermediate::Failed(r));
    // SAFETY: ends the intermediate without running anything else.
    unsafe { libc::_exit(125) }
}

/// The intermediate: user and pid namespaces, then the process. Never returns.
fn intermediate(
    process: &ProcessPlan,
    stdio: &[OwnedFd],
    ns: &[(Namespace, OwnedFd)],
    cgroup: &Cgroup<'_>,
    chan: Channel,
    pdeathsig: bool,
    tr: Trace,
) -> ! {
    let step = |which: Namespace| -> Result<(), Report> {
        if let Some((_, fd)) = ns_fd(ns, which) {
            setns(fd, CloneFlags::empty()).map_err(|e| {
                Report::new(Step::Join, e as i32)
                    .path(which.name())
                    .detail(format!("join the container's {} namespace", which.name()))
                    .hint("the container must still be running")
            })?;
        }
        Ok(())
    };
    if let Err(r) = step(Namespace::User).and_then(|()| step(Namespace::Pid)) {
        intermediate_failed(&chan, r);
    }
    match clone_container(libc::CLONE_PARENT as u64, cgroup.dir) {
        Err(e) => intermediate_failed(&chan, Report::new(Step::Clone, e as i32).detail("clone the exec'd process")),
        Ok(Forked::Parent { pid, .. }) => {
            let _ = chan.send(&Intermediate::Cloned { pid: pid.as_raw() });
            // SAFETY: ends the intermediate without running anything else.
            unsafe { libc::_exit(0) }
        }
        Ok(Forked::Child) => {
            // A directory of the host's cgroupfs, done with (CVE-2024-21626);
            // the monitor's, which this copy never drops.
            if let Some(fd) = cgroup.dir {
                let _ = nix::unistd::close(fd);
            }
            exec_process(process, stdio, ns, chan, pdeathsig, tr)
        }
    }
}

/// The exec'd process itself. Never returns.
fn exec_process(process: &ProcessPlan, stdio: &[OwnedFd], ns: &[(Namespace, OwnedFd)], chan: Channel, pdeathsig: bool, tr: Trace) -> ! {
    for (i, fd) in stdio.iter().enumerate().take(3) {
        // SAFETY: dup2 onto this process's own stdio.
        unsafe { libc::dup2(fd.as_raw_fd(), i as RawFd) };
    }
    // Placed in the container's cgroup by the monitor (or by clone3).
    match chan.recv::<ToChild>() {
        Ok(Some(ToChild::Placed)) => {}
        // SAFETY: the monitor is gone: nobody to report to.
        _ => unsafe { libc::_exit(125) },
    }
    let ctx = child::process::Context {
        pdeathsig,
        ..child::process::Context::exec()
    };
    // A seccomp agent's socket is a host path: connected to before the mount
    // namespace changes, with this process's host pid noted for its message.
    let agent = match process.seccomp_agent.as_ref().and_then(|a| a.connect.as_deref()) {
        Some(path) => {
            child::hooks::remember_host_pid();
            child::seccomp::connect_agent(path)
        }
        None => Ok(()),
    };
    let result = agent
        .and_then(|()| child::join::join(ns))
        .and_then(|()| child::process::prepare(process, &chan, ctx, tr));
    let report = match result {
        Ok(cmd) => cmd.exec(),
        Err(r) => r,
    };
    child::fail(&chan, report)
}

fn ns_fd(ns: &[(Namespace, OwnedFd)], which: Namespace) -> Option<&(Namespace, OwnedFd)> {
    ns.iter().find(|(n, _)| *n == which)
}

fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    // SAFETY: a new descriptor from the kernel.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `tsbox-init --exec`: starts one process in a running container for Node
/// (an OCI runtime's `exec --detach`), as the monitor would, but as this
/// process's descendant, so that it descends from Node's caller: once this
/// process and Node have exited, it is reparented to the caller's subreaper
/// (conmon, a containerd shim), which waits for it. The namespaces and the
/// cgroup come as descriptors, from the monitor through Node. Reports the
/// process's pty and `started` (or `failed`) and exits; the process is never
/// killed with it.
pub fn for_node(node: Channel) -> i32 {
    let (msg, fds) = match node.recv_fds::<NodeMsg>() {
        Ok(Some(m)) => m,
        Ok(None) => return 125,
        Err(e) => {
            let _ = node.send(&HelperMsg::Failed(Report::new(Step::ReadPlan, e.errno()).detail(e.to_string())));
            return 125;
        }
    };
    let NodeMsg::ExecInto {
        process,
        stdio,
        namespaces,
        procs,
        cgroup_dir,
    } = msg
    else {
        let _ = node.send(&HelperMsg::Failed(
            Report::new(Step::ReadPlan, libc::EPROTO).detail("the first message was not an exec"),
        ));
        return 125;
    };
    let wanted = stdio as usize + namespaces.len() + usize::from(cgroup_dir);
    if fds.len() != wanted || stdio > 3 {
        let _ = node.send(&HelperMsg::Failed(
            Report::new(Step::ReadPlan, libc::EPROTO).detail(format!("{} descriptors came with the exec, not {wanted}", fds.len())),
        ));
        return 125;
    }
    let mut fds = fds.into_iter();
    let stdio: Vec<OwnedFd> = fds.by_ref().take(stdio as usize).collect();
    let ns: Vec<(Namespace, OwnedFd)> = namespaces.into_iter().zip(fds.by_ref()).collect();
    let dir = fds.next();
    let cgroup = Cgroup {
        dir: dir.as_ref().map(AsRawFd::as_raw_fd),
        procs: &procs,
    };
    let p = match spawn(&process, &stdio, &ns, &cgroup, false, Trace::new(false, 0)) {
        Ok(p) => p,
        Err(r) => {
            let _ = node.send(&HelperMsg::Failed(r));
            return 125;
        }
    };
    drop(stdio);
    // What the process says before it execs: its pty, or why it failed; its
    // channel closes at exec.
    let mut failure = None;
    loop {
        match p.chan.recv_fds::<ChildMsg>() {
            Ok(Some((ChildMsg::Pty, fds))) => relay_pty(fds, &node),
            Ok(Some((ChildMsg::Failed(r), _))) => failure = Some(r),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if failure.is_none() && !super::monitor::still_setting_up(p.pid) {
        let _ = node.send(&HelperMsg::Started { pid: p.pid.as_raw() });
        return 0;
    }
    let (status, _) = super::monitor::reap(p.pid);
    let (code, signal) = super::monitor::decode_status(status);
    let _ = node.send(&HelperMsg::Failed(
        failure.unwrap_or_else(|| super::monitor::died_before_start(code, signal)),
    ));
    125
}
