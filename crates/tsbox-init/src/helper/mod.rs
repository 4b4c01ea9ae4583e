//! tsbox-init's own process: the helper, which becomes the container's
//! monitor. Its side of the phases, one place each, in order (Node's side is
//! ts/runtime/launch.ts):
//!
//! 1. `plan`: the [`SandboxPlan`] from Node, with the id range's lock.
//!    Detached, the helper leaves its caller's process tree here.
//! 2. `cloned`: clone3 into the namespaces (and, on v2, the cgroup).
//! 3. `maps`: the helper writes the id maps, or Node does (newuidmap).
//! 4. `cgroup`: v2: done by clone3. v1: placed below, while the child mounts.
//! 5. `network`: Node's hook, when the plan has one.
//! 6. `go`: the child builds its sandbox (idmapped trees attached).
//! 7. `ready`, 8. `process`, 9. `started`, 10. `exited`: the monitor
//!    ([`monitor::run`]) relays them, and serves the control socket.

pub mod cgroup;
pub mod clone;
pub mod control;
pub mod exec;
pub mod idmap;
pub mod monitor;
pub mod state;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{SigSet, SigmaskHow};
use tsbox_core::{CgroupPhase, HelperMsg, MapsPhase, NetworkPhase, NodeMsg, ProcessPlan, Report, SandboxPlan, Step, ToChild, PLAN_VERSION};

use crate::channel::Channel;
use crate::trace::{trace, Trace};
use clone::{clone_container, Forked};
use monitor::Container;

/// Runs the helper to the end; returns its exit status.
pub fn run(node: Channel) -> i32 {
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
    crate::child::process::close_from(4);

    // Phase 1, plan: and what the container holds while it lives (the lock
    // of its host id range), kept until the last process has been reaped.
    let (plan, _held): (SandboxPlan, Vec<OwnedFd>) = match node.recv_fds::<NodeMsg>() {
        Ok(Some((NodeMsg::Plan(p), held))) => (*p, held),
        Ok(None) => return 125,
        Ok(Some(_)) => return fail(&node, report(Step::ReadPlan, libc::EPROTO, "the first message was not a plan")),
        Err(e) => return fail(&node, report(Step::ReadPlan, e.errno(), &e.to_string())),
    };
    if plan.version != PLAN_VERSION {
        return fail(
            &node,
            report(
                Step::ReadPlan,
                libc::EPROTO,
                &format!("plan version {} but this tsbox-init speaks {PLAN_VERSION}", plan.version),
            )
            .hint("the addon and tsbox-init come from different tsbox releases; reinstall tsbox"),
        );
    }
    if nix::unistd::getppid().as_raw() != plan.parent_pid {
        return 125; // Whoever started us is gone already.
    }
    let tr = Trace::new(plan.trace, plan.trace_t0_ns);
    if plan.detach {
        if let Err(r) = detach() {
            return fail(&node, r);
        }
        trace!(
            tr,
            "detach: the monitor is pid {}, out of its caller's process tree",
            std::process::id()
        );
    }

    // Phase 2, cloned.
    let (mine, theirs) = match Channel::pair() {
        Ok(p) => p,
        Err(e) => return fail(&node, report(Step::Clone, e as i32, "create the helper-child socketpair")),
    };
    let flags = plan.clone_flags();
    // The cgroup2 directory for CLONE_INTO_CGROUP. One that cannot be opened
    // (or a kernel without the flag) leaves the child to be placed through
    // its cgroup.procs below, which reports what fails.
    let cgroup_dir = match &plan.cgroup {
        CgroupPhase::CloneInto { dir, .. } => open_dir(dir),
        _ => None,
    };
    let (pid, pidfd, placed_by_clone) = match clone_container(flags, cgroup_dir.as_ref().map(AsRawFd::as_raw_fd)) {
        Err(e) => {
            return fail(
                &node,
                report(Step::Clone, e as i32, &format!("clone with {}", clone::flag_names(flags))),
            )
        }
        Ok(Forked::Child) => {
            drop(node);
            drop(mine);
            crate::child::run(&plan, theirs, tr)
        }
        Ok(Forked::Parent { pid, pidfd, placed }) => (pid, pidfd, placed),
    };
    drop(theirs);
    let c = Container { pid, pidfd };
    trace!(
        tr,
        "clone: {} pid={pid}{}",
        clone::flag_names(flags),
        if placed_by_clone {
            " into its cgroup (CLONE_INTO_CGROUP)"
        } else {
            ""
        }
    );
    let abort = |r: Option<Report>| {
        c.signal(libc::SIGKILL);
        c.reap();
        r.map_or(125, |r| fail(&node, r))
    };

    // Phase 3, maps: the helper's part.
    if let MapsPhase::Helper { maps } = &plan.maps {
        if let Err(r) = idmap::write_maps(pid, maps, &tr) {
            return abort(Some(r));
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
        return abort(None);
    }

    // Phases 3 to 5, Node's parts: what the plan says Node does, in the order
    // Node sends it, and the process if it comes along.
    let place = match &plan.cgroup {
        CgroupPhase::Place { procs, .. } => procs.as_slice(),
        CgroupPhase::CloneInto { procs, .. } if !placed_by_clone => procs.as_slice(),
        _ => &[],
    };
    let mut awaiting = Awaiting {
        maps: plan.maps == MapsPhase::Node,
        cgroup: matches!(plan.cgroup, CgroupPhase::Place { made_by_node: true, .. }),
        network: plan.network == NetworkPhase::Node,
        process: None,
    };
    // v1 checks the mover against the moved process's ids unless the mover
    // is root: without root, place it before it changes them.
    let place_first = !place.is_empty() && !nix::unistd::geteuid().is_root();
    let before_go = awaiting.until(&node, |a| a.maps || a.network || (place_first && a.cgroup));
    if let Err(r) = before_go.and_then(|()| {
        if place_first {
            cgroup::place(place, pid, &tr).map_err(Some)
        } else {
            Ok(())
        }
    }) {
        return abort(r);
    }

    // Phase 6, go: the idmapped trees travel with it.
    let trees = match idmap::trees(&plan, pid, &tr) {
        Ok(t) => t,
        Err(r) => return abort(Some(r)),
    };
    let raw: Vec<i32> = trees.iter().map(AsRawFd::as_raw_fd).collect();
    // If the child died before go, its status says why (the monitor reports it).
    let _ = mine.send_fds(&ToChild::Go, &raw);
    drop(trees);

    // Phase 4, cgroup, on v1: the child builds its mounts meanwhile, and
    // waits for `placed` before it enters its cgroup namespace.
    if !place_first {
        let placed = awaiting
            .until(&node, |a| a.cgroup)
            .and_then(|()| cgroup::place(place, pid, &tr).map_err(Some));
        if let Err(r) = placed {
            return abort(r);
        }
    }
    let _ = mine.send(&ToChild::Placed);
    // While the child builds its sandbox: the state says it exists (a
    // process that came with the plan says `running` soon, in one write).
    if awaiting.process.is_none() {
        state::StateFile::beside(plan.control.as_deref()).update(|s| {
            s.insert("pid".into(), pid.as_raw().into());
            s.insert("monitorPid".into(), monitor.into());
            s.insert("status".into(), "created".into());
        });
    }

    // Phases 7 to 10: the monitor.
    let outcome = monitor::run(&node, mine, &c, &plan, awaiting.process.take(), cgroup_dir, &tr);
    if (outcome.caller_gone || plan.detach) && !matches!(plan.cgroup, CgroupPhase::None) {
        // Its processes are gone (PID 1 is reaped): the cgroups are empty, and
        // nobody else will remove them now (tsbox gc takes what is left).
        cgroup::remove(&plan.cgroup, &tr);
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

/// What Node still has to say before `go`, and a process that came early.
struct Awaiting {
    maps: bool,
    cgroup: bool,
    network: bool,
    process: Option<Box<ProcessPlan>>,
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
                Ok(Some(NodeMsg::Process(p))) if self.process.is_none() => self.process = Some(p),
                // A signal before the container runs: it dies, as it would.
                Ok(Some(NodeMsg::Signal { .. })) => return Err(None),
                Ok(Some(msg)) => return Err(Some(report(Step::WaitGo, libc::EPROTO, &format!("unexpected {msg:?} from Node")))),
                Ok(None) | Err(_) => return Err(None),
            }
        }
        Ok(())
    }
}

/// Leaves the caller's process tree: the helper forks, the parent exits at
/// once (the caller reaps it), and the child, orphaned to init, is the
/// monitor that keeps the container.
fn detach() -> Result<(), Report> {
    // SAFETY: this process is single-threaded.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            // SAFETY: ends the parent without running anything else.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Child) => Ok(()),
        Err(e) => Err(report(Step::Clone, e as i32, "fork the detached monitor")),
    }
}

fn open_dir(dir: &str) -> Option<OwnedFd> {
    nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
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
