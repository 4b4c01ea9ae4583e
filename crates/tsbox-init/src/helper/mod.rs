//! tsbox-init's own process: the helper, which becomes the container's
//! monitor. Its side of the phases, one place each, in order (Node's side is
//! ts/runtime/launch.ts):
//!
//! 1. `plan`: the [`SandboxPlan`] from Node, with the id range's lock.
//!    Detached, the helper leaves its caller's process tree here.
//! 2. `cloned`: clone3 into the namespaces (and, on v2, the cgroup).
//! 3. `maps`: the helper writes the id maps, or Node does (newuidmap).
//! 4. `cgroup`: v2: done by clone3. v1 as root: the helper's thread enters
//!    the cgroups and clones there. Otherwise placed below, while the child mounts.
//! 5. `network`: Node's hook, when the plan has one.
//! 6. `go`: the child builds its sandbox (idmapped trees attached).
//! 7. `ready`, 8. `process`, 9. `started`, 10. `exited`: the monitor
//!    ([`monitor::run`]) relays them, and serves the control socket.
//!
//! Phases 1 to 6 are [`setup`], which makes its system calls through
//! [`host::Host`], so that its unit tests (helper/tests.rs) run it without
//! root; they run the monitor too, with an ordinary process as PID 1.

pub mod cgroup;
pub mod clone;
pub mod control;
pub mod exec;
pub mod host;
pub mod idmap;
pub mod log;
pub mod monitor;
pub mod state;
#[cfg(test)]
pub(crate) mod tests;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{SigSet, SigmaskHow};
use tsbox_core::{CgroupPhase, HelperMsg, MapsPhase, NetworkPhase, NodeMsg, ProcessPlan, Report, SandboxPlan, Step, ToChild, PLAN_VERSION};

use crate::channel::Channel;
use crate::trace::{trace, Trace};
use host::{Host, Kernel};
use monitor::Container;

/// How many descriptors, from 4 up, the container's first process gets as
/// 3 and up (an OCI runtime's --preserve-fds): set once at start, read by
/// the child (a copy of this process).
pub static PRESERVED_FDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Runs the helper to the end; returns its exit status.
pub fn run(node: Channel, preserved: u32) -> i32 {
    PRESERVED_FDS.store(preserved, std::sync::atomic::Ordering::Relaxed);
    // Never let a signal interrupt setup: they are read from a signalfd later
    // and forwarded. No parent-death signal either: when whoever started us
    // dies, its end of the channel closes, and every wait below watches the
    // channel, so the container is killed and reaped, and what it held (the
    // descriptors the plan came with) is given back only once its processes
    // are gone, whatever the mode (PID 1 may clear its own parent-death
    // signal with --no-init).
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None);
    // Whatever else the caller's process had open without close-on-exec must
    // never reach the container (its PID 1, the init, never execs).
    crate::child::process::close_from(4 + preserved);

    let s = match setup(&mut Kernel, &node) {
        Ok(s) => s,
        Err(status) => return status,
    };
    let Setup {
        plan,
        held: _held,
        child,
        container: c,
        process,
        cgroup_dir,
        tr,
        log,
    } = s;

    // The container's first process has its own copies of the caller's
    // stdio now. A monitor with no trace to write there gives up its own at
    // once: the caller's streams then end as the container's last process
    // exits, before the monitor is woken to report it, rather than after
    // (the streams' end was on the path of every result). A detached
    // container's monitor keeps what it was given.
    let early = !plan.detach && !plan.trace;
    if early {
        release_stdio();
    }

    // Phases 7 to 10: the monitor.
    let outcome = monitor::run(
        &node,
        child,
        &c,
        &plan,
        process,
        cgroup_dir,
        log,
        &tr,
        if early { &|| {} } else { &release_stdio },
    );
    if (outcome.caller_gone || plan.detach) && !matches!(plan.cgroup, CgroupPhase::None) {
        // Its processes are gone (PID 1 is reaped): the cgroups are empty, and
        // nobody else will remove them now (tsbox gc takes what is left).
        cgroup::remove(&plan.cgroup, &plan.cgroup_kept, &tr);
    }
    if outcome.caller_gone && !plan.detach {
        // An attached container's state goes with it when its caller cannot
        // remove it (a detached one's stays until `tsbox rm`).
        if let Some(dir) = plan.control.as_deref().and_then(|c| std::path::Path::new(c).parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    outcome.status
}

/// The container's stdio, which is this helper's, given up: once the
/// container is cloned (no trace), or once its processes are gone (the
/// monitor's trace lines go there until then). Either way the caller reads
/// the end of its output before this helper has torn the sandbox down
/// (releasing a mount namespace waits for an RCU grace period, milliseconds).
fn release_stdio() {
    if let Ok(null) = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
        for fd in 0..3 {
            // SAFETY: dup2 onto this process's own standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// A container through phase 6, handed to the monitor.
pub struct Setup {
    pub plan: SandboxPlan,
    /// What the container holds while it lives (the lock of its host id
    /// range), kept until its last process has been reaped.
    pub held: Vec<OwnedFd>,
    /// The helper's end of the child channel.
    pub child: Channel,
    pub container: Container,
    /// The process, when Node sent it before `go`: to run, or to hold until
    /// `start` (a created container).
    pub process: Option<Pending>,
    /// The v2 cgroup directory, for exec'd processes.
    pub cgroup_dir: Option<OwnedFd>,
    pub tr: Trace,
    /// A detached container's output, which the monitor keeps (helper/log.rs).
    pub log: Option<log::Log>,
}

/// Phases 1 to 6 on the helper's side, through `host`. `Err` is the
/// helper's exit status when the container could not be set up; a report
/// went to Node then, unless Node is the one that gave up.
pub fn setup<H: Host>(host: &mut H, node: &Channel) -> Result<Setup, i32> {
    // Phase 1, plan: and what the container holds while it lives.
    let (plan, held): (SandboxPlan, Vec<OwnedFd>) = match node.recv_fds::<NodeMsg>() {
        Ok(Some((NodeMsg::Plan(p), held))) => (*p, held),
        Ok(None) => return Err(125),
        Ok(Some(_)) => return Err(fail(node, report(Step::ReadPlan, libc::EPROTO, "the first message was not a plan"))),
        Err(e) => return Err(fail(node, report(Step::ReadPlan, e.errno(), &e.to_string()))),
    };
    if plan.version != PLAN_VERSION {
        return Err(fail(
            node,
            report(
                Step::ReadPlan,
                libc::EPROTO,
                &format!("plan version {} but this tsbox-init speaks {PLAN_VERSION}", plan.version),
            )
            .hint("the addon and tsbox-init come from different tsbox releases; reinstall tsbox"),
        ));
    }
    if host.parent_pid() != plan.parent_pid {
        return Err(125); // Whoever started us is gone already.
    }
    let tr = Trace::new(plan.trace, plan.trace_t0_ns);
    if plan.detach {
        host.detach().map_err(|r| fail(node, r))?;
        trace!(
            tr,
            "detach: the monitor is pid {}, out of its caller's process tree",
            std::process::id()
        );
    }

    // A detached container's stdout and stderr: a pipe the monitor reads,
    // made while the state directory is this process's to open.
    let log = log::Log::start(&plan).map_err(|r| fail(node, r))?;

    // Namespaces that exist already: entered here, so the clone below
    // starts the child in them (pid: as the child of its pid namespace).
    host.join_namespaces(&plan.join, &tr).map_err(|r| fail(node, r))?;
    if let Some(offsets) = &plan.time {
        host.time_namespace(offsets, &tr).map_err(|r| fail(node, r))?;
    }

    // A joined pid namespace has processes in it already, which see the
    // child from its clone on, while it is still a copy of this helper:
    // host root, with the host's root and cwd and this helper's descriptors.
    // It starts not dumpable (the flag is inherited), so that one of them
    // with CAP_SYS_PTRACE in its user namespace cannot follow /proc/PID/root
    // into the host. Only then: in a pid namespace of its own the child is
    // seen by nobody else until it execs, and an ordinary user's newuidmap
    // and pasta need it dumpable (they check /proc/PID's owner, and open
    // /proc/PID/ns/net).
    if plan.joins(tsbox_core::Namespace::Pid) {
        host.not_dumpable();
    }

    // What Node still has to say, in the order it says it; a process that
    // comes meanwhile is kept.
    let mut awaiting = Awaiting {
        maps: plan.maps == MapsPhase::Node,
        cgroup: matches!(
            plan.cgroup,
            CgroupPhase::Place { made_by_node: true, .. } | CgroupPhase::Enter { made_by_node: true, .. }
        ),
        network: plan.network == NetworkPhase::Node,
        runtime_hooks: plan.runtime_hooks,
        process: None,
    };

    let pair = || Channel::pair().map_err(|e| fail(node, report(Step::Clone, e as i32, "create the helper-child socketpair")));
    let (mine, theirs) = pair()?;
    // Phase 4, cgroup, by the helper's own thread (v1 and hybrid as root):
    // into the container's cgroups once Node made them, for the clone. It
    // goes back at once when the clone failed, before it waits for Node,
    // or once the child has `go` (below); a failure before then goes back
    // before Node hears.
    if let CgroupPhase::Enter { tasks, home, .. } = &plan.cgroup {
        awaiting.until(node, |a| a.cgroup).map_err(|r| r.map_or(125, |r| fail(node, r)))?;
        if let Err(r) = host.move_self(tasks) {
            // Back wherever it got: a move into the cgroup it is in is none.
            let _ = host.move_self(home);
            return Err(fail(node, r));
        }
    }

    // Phase 2, cloned.
    let flags = plan.clone_flags() | if plan.reparent { clone::CLONE_PARENT } else { 0 };
    // The cgroup2 directory for CLONE_INTO_CGROUP. One that cannot be opened
    // (or a kernel without the flag) leaves the child to be placed through
    // its cgroup.procs below, which reports what fails.
    let cgroup_dir = match &plan.cgroup {
        CgroupPhase::CloneInto { dir, .. } | CgroupPhase::Enter { dir: Some(dir), .. } => host.open_cgroup(dir),
        _ => None,
    };
    let clone = |host: &mut H, mine: &Channel, theirs: Channel| {
        host.clone_child(
            &plan,
            flags,
            host::raw(&cgroup_dir),
            theirs,
            &[node.as_raw_fd(), mine.as_raw_fd()],
            tr,
        )
    };
    let cloned = clone(host, &mine, theirs);
    let entered = matches!(plan.cgroup, CgroupPhase::Enter { .. });
    let go_home = |host: &mut H| match &plan.cgroup {
        CgroupPhase::Enter { home, .. } => host.move_self(home),
        _ => Ok(()),
    };
    let clone_failed = |e: nix::errno::Errno| {
        fail(
            node,
            report(Step::Clone, e as i32, &format!("clone with {}", clone::flag_names(flags))),
        )
    };
    // Entered, the helper counts in the pids limits while it clones: a
    // parent cgroup with one free slot refuses the clone (EAGAIN), where a
    // move by pid may go over it. Then, back home, it clones again and
    // places the child by pid, as it did before it could enter. A clone
    // that failed otherwise is reported from home.
    let (mine, cloned, by_pid) = match cloned {
        Err(nix::errno::Errno::EAGAIN) if entered => {
            if go_home(host).is_err() {
                return Err(clone_failed(nix::errno::Errno::EAGAIN));
            }
            drop(mine);
            let (mine, theirs) = pair()?;
            let again = clone(host, &mine, theirs);
            (mine, again.map_err(clone_failed)?, true)
        }
        Err(e) => {
            if entered {
                let _ = go_home(host);
            }
            return Err(clone_failed(e));
        }
        Ok(cloned) => (mine, cloned, false),
    };
    // The helper, the container's monitor from here on, is still in the
    // container's cgroups when its first clone took: it goes back once the
    // child has `go` (below), while the child mounts, before `placed`. The
    // child's maps and `go` do not wait for it; nothing of the container's
    // runs before it is back.
    let mut home_pending = entered && !by_pid;
    if by_pid {
        trace!(
            tr,
            "cgroup: the clone in the container's cgroups hit a pids limit (EAGAIN); cloned outside, placed by pid"
        );
    }
    if let Some(l) = &log {
        l.cloned();
    }
    // The preserved descriptors are the child's now: the monitor keeps none.
    for fd in 4..4 + PRESERVED_FDS.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = nix::unistd::close(fd as i32);
    }
    let c = Container {
        pid: cloned.pid,
        pidfd: cloned.pidfd,
    };
    let pid = c.pid;
    trace!(
        tr,
        "clone: {} pid={pid}{}",
        clone::flag_names(flags),
        if cloned.placed {
            " into its cgroup (CLONE_INTO_CGROUP)"
        } else {
            ""
        }
    );
    // A failure from here on kills the child (from home: Node removes the
    // cgroup once it hears); Node hears why, unless it is the one that gave
    // up (None).
    let abort = |host: &mut H, home_pending: bool, r: Option<Report>| {
        host.kill(&c);
        if home_pending {
            let _ = go_home(host);
        }
        r.map_or(125, |r| fail(node, r))
    };
    // The entered helper's way back (`home_pending` is then false); a
    // failure kills the child.
    let come_home = |host: &mut H, when: &str| -> Result<(), i32> {
        go_home(host).map_err(|r| abort(host, false, Some(r)))?;
        if let CgroupPhase::Enter { tasks, .. } = &plan.cgroup {
            trace!(
                tr,
                "cgroup: cloned in {} by the helper's own thread, {when}",
                tasks.iter().map(|t| t.trim_end_matches("/tasks")).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(())
    };

    // Phase 3, maps: the helper's part.
    if let MapsPhase::Helper { maps } = &plan.maps {
        if let Err(r) = host.write_maps(pid, maps, &tr) {
            return Err(abort(host, home_pending, Some(r)));
        }
    }
    let monitor = nix::unistd::getpid().as_raw();
    if node
        .send(&HelperMsg::Cloned {
            pid: pid.as_raw(),
            monitor,
        })
        .is_err()
        && !plan.detach
    {
        return Err(abort(host, home_pending, None));
    }

    // Phases 3 to 5, Node's parts: what the plan says Node does, in the order
    // Node sends it, and the process if it comes along.
    let place: Vec<String> = match &plan.cgroup {
        CgroupPhase::Place { procs, .. } => procs.clone(),
        CgroupPhase::CloneInto { procs, .. } if !cloned.placed => procs.clone(),
        // By pid, what the helper's thread and clone3 did not take: the v1
        // hierarchies when it cloned outside (EAGAIN), the cgroup2
        // directory on a kernel without CLONE_INTO_CGROUP.
        CgroupPhase::Enter { procs, dir, .. } => {
            let cgroup2 = dir.as_ref().map(|d| format!("{d}/cgroup.procs"));
            procs
                .iter()
                .filter(|p| if Some(*p) == cgroup2.as_ref() { !cloned.placed } else { by_pid })
                .cloned()
                .collect()
        }
        _ => Vec::new(),
    };
    // v1 checks the mover against the moved process's ids unless the mover
    // is root: without root, place it before it changes them.
    let place_first = !place.is_empty() && !host.is_root();
    // Node's parts before `go` (newuidmap, a network's interfaces) take
    // their time: back home before waiting for them, not counted, frozen
    // or killed with the container meanwhile.
    if home_pending && (awaiting.maps || awaiting.network || (place_first && awaiting.cgroup)) {
        come_home(host, "back before waiting for Node")?;
        home_pending = false;
    }
    let before_go = awaiting.until(node, |a| a.maps || a.network || (place_first && a.cgroup));
    if let Err(r) = before_go.and_then(|()| {
        if place_first {
            host.place(&place, pid, &tr).map_err(Some)
        } else {
            Ok(())
        }
    }) {
        return Err(abort(host, home_pending, r));
    }

    // Phase 6, go: the idmapped trees travel with it.
    let trees = match host.idmapped_trees(&plan, pid, &tr) {
        Ok(t) => t,
        Err(r) => return Err(abort(host, home_pending, Some(r))),
    };
    let raw: Vec<i32> = trees.iter().map(AsRawFd::as_raw_fd).collect();
    // If the child died before go, its status says why (the monitor reports it).
    let _ = mine.send_fds(&ToChild::Go, &raw);
    drop(trees);
    if home_pending {
        come_home(host, "back once the child had go")?;
        home_pending = false;
    }

    // Phase 4, cgroup, on v1: the child builds its mounts meanwhile, and
    // waits for `placed` before it enters its cgroup namespace.
    if !place_first {
        let placed = awaiting.until(node, |a| a.cgroup).and_then(|()| {
            if place.is_empty() {
                Ok(())
            } else {
                host.place(&place, pid, &tr).map_err(Some)
            }
        });
        if let Err(r) = placed {
            return Err(abort(host, home_pending, r));
        }
    }
    let _ = mine.send(&ToChild::Placed);
    // The runtime's hooks (prestart, createRuntime) run in Node once the
    // container exists; the child waits for them before pivot_root.
    if plan.runtime_hooks {
        // Once the container is in its cgroups: a hook may look there (/proc/PID/cgroup).
        let _ = node.send(&HelperMsg::Placed);
        if let Err(r) = awaiting.until(node, |a| a.runtime_hooks) {
            return Err(abort(host, home_pending, r));
        }
        let _ = mine.send(&ToChild::Hooked);
    }
    // While the child builds its sandbox: the state says it exists (a
    // process that came with the plan says `running` soon, in one write).
    if !matches!(awaiting.process, Some(Pending::Run(_))) {
        state::StateFile::beside(plan.control.as_deref()).update(|s| {
            s.insert("pid".into(), pid.as_raw().into());
            state::name_monitor(s);
            s.insert("status".into(), "created".into());
        });
    }
    // Exec'd processes of an entered container go in by pid (monitor.rs).
    let cgroup_dir = if entered { None } else { cgroup_dir };
    Ok(Setup {
        plan,
        held,
        child: mine,
        container: c,
        process: awaiting.process.take(),
        cgroup_dir,
        tr,
        log,
    })
}

/// A process Node sent: to run when the sandbox is ready, or to hold until
/// `start`.
pub enum Pending {
    Run(Box<ProcessPlan>),
    Hold(Box<ProcessPlan>),
}

/// What Node still has to say before `go`, and a process that came early.
struct Awaiting {
    maps: bool,
    cgroup: bool,
    network: bool,
    runtime_hooks: bool,
    process: Option<Pending>,
}

impl Awaiting {
    /// Reads Node's messages while `pending` says one is still due. `Err(None)`
    /// when Node closed the channel (it gave up: a map or the cgroup could
    /// not be made).
    fn until(&mut self, node: &Channel, pending: impl Fn(&Awaiting) -> bool) -> Result<(), Option<Report>> {
        while pending(self) {
            match node.recv::<NodeMsg>() {
                Ok(Some(NodeMsg::Maps)) if self.maps => self.maps = false,
                Ok(Some(NodeMsg::Cgroup)) if self.cgroup => self.cgroup = false,
                Ok(Some(NodeMsg::Network)) if self.network => self.network = false,
                Ok(Some(NodeMsg::RuntimeHooks)) if self.runtime_hooks => self.runtime_hooks = false,
                Ok(Some(NodeMsg::Process(p))) if self.process.is_none() => self.process = Some(Pending::Run(p)),
                Ok(Some(NodeMsg::Hold(p))) if self.process.is_none() => self.process = Some(Pending::Hold(p)),
                // A signal before the container runs: it dies, as it would.
                Ok(Some(NodeMsg::Signal { .. })) => return Err(None),
                Ok(Some(msg)) => return Err(Some(report(Step::WaitGo, libc::EPROTO, &format!("unexpected {msg:?} from Node")))),
                Ok(None) | Err(_) => return Err(None),
            }
        }
        Ok(())
    }
}

/// A failure before the container runs: reported to Node, and the helper's
/// exit status.
pub fn fail(node: &Channel, report: Report) -> i32 {
    let code = crate::child::command::exit_code_for(&report);
    let _ = node.send(&HelperMsg::Failed(report));
    code
}

pub fn report(step: Step, errno: i32, detail: &str) -> Report {
    Report::new(step, errno).detail(detail.to_string())
}
