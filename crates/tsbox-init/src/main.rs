//! tsbox-init: the single-threaded helper the addon spawns for each container.
//!
//! It reads the launch plan from the SOCK_SEQPACKET socket on fd 3, clones the
//! container into its namespaces, writes its id maps (or waits for Node to,
//! with newuidmap), lets the child set itself up while it places it in its
//! cgroup, then stays as the monitor until the container ends. The numbered sync points are DESIGN.md's; Node's side of them is in
//! ts/runtime/launch.ts.

mod caps;
mod cgroup;
mod channel;
mod clone;
mod container;
mod exec;
mod fail;
mod idmap;
mod init;
mod join;
mod monitor;
mod mounts;
mod pty;
mod seccomp;
mod sys;
mod trace;
mod users;

use nix::sys::signal::{SigSet, SigmaskHow};
use tsbox_core::{ChildGo, HelperMsg, NodeMsg, Plan, Step, PLAN_VERSION};

use channel::Channel;
use clone::{clone_container, Forked};
use monitor::{fail, report, Container};
use trace::{trace, Trace};

/// The descriptor the addon hands us the channel on.
const CHANNEL_FD: i32 = 3;

fn main() {
    // A panic must never unwind into half-built container state; in a cloned
    // child abort() would signal the wrong thread, so exit directly.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("tsbox-init: internal error: {info}");
        // SAFETY: ends the process without running anything else.
        unsafe { libc::_exit(125) }
    }));
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("tsbox-init {} (plan version {PLAN_VERSION})", env!("CARGO_PKG_VERSION"));
        return;
    }
    // SAFETY: fd 3 is ours by the spawn contract; nothing else in this process uses it.
    let node = match unsafe { Channel::from_raw_fd(CHANNEL_FD) } {
        Ok(c) => c,
        Err(_) => {
            eprintln!("tsbox-init: this program is started by tsbox, with its channel on fd 3; run `tsbox run` instead");
            std::process::exit(125);
        }
    };
    std::process::exit(helper(node));
}

fn helper(node: Channel) -> i32 {
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
    container::close_from(CHANNEL_FD as u32 + 1);

    // (2) The plan, and what the container holds while it lives (the lock of
    // its host id range): kept open until this process exits, after the last
    // process of the container has been reaped.
    let (plan, _held): (Plan, Vec<std::os::fd::OwnedFd>) = match node.recv_fds::<NodeMsg>() {
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

    let (mine, theirs) = match Channel::pair() {
        Ok(p) => p,
        Err(e) => return fail(&node, report(Step::Clone, e as i32, "create the helper-child socketpair")),
    };
    let flags = plan.clone_flags();
    // The cgroup2 directory for CLONE_INTO_CGROUP. One that cannot be opened
    // (or a kernel without the flag) leaves the child to be placed through
    // cgroup_procs below, which reports what fails. Opened before any join,
    // so that the path is the host's, not one inside the container.
    let cgroup = plan.cgroup.as_deref().and_then(|dir| {
        nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    });
    if let Some(target) = plan.join {
        // Root on the host until the child switches ids: nothing in the
        // container may read or ptrace us meanwhile (CVE-2016-9962's class).
        let _ = nix::sys::prctl::set_dumpable(false);
        if let Err(r) = join::join(target, &plan) {
            return fail(&node, r);
        }
        trace!(tr, "join: the namespaces of pid {target}");
    }
    let (pid, pidfd, placed) = match clone_container(flags, cgroup.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)) {
        Err(e) => {
            return fail(
                &node,
                report(Step::Clone, e as i32, &format!("clone with {}", clone::flag_names(flags))),
            )
        }
        Ok(Forked::Child) => {
            drop(node);
            drop(mine);
            drop(cgroup);
            container::run(&plan, theirs, tr)
        }
        Ok(Forked::Parent { pid, pidfd, placed }) => (pid, pidfd, placed),
    };
    drop(cgroup);
    drop(theirs);
    let c = Container { pid, pidfd };
    trace!(
        tr,
        "clone: {} pid={pid}{}{}",
        clone::flag_names(flags),
        if c.pidfd.is_some() { " (pidfd)" } else { "" },
        if placed { " into its cgroup (CLONE_INTO_CGROUP)" } else { "" }
    );

    let abort = |r: Option<tsbox_core::Report>| {
        c.signal(libc::SIGKILL);
        c.reap();
        r.map_or(125, |r| fail(&node, r))
    };
    // (3) The id maps: ours to write, unless they need newuidmap (Node's,
    // before it says go).
    if let Some(maps) = &plan.id_maps {
        if let Err(r) = idmap::write_maps(pid, maps, &tr) {
            return abort(Some(r));
        }
    }
    let we_place = !placed && !plan.cgroup_procs.is_empty();
    if node
        .send(&HelperMsg::Cloned {
            pid: pid.as_raw(),
            placed: placed || we_place,
        })
        .is_err()
    {
        return abort(None);
    }
    // Node's messages, in the order it sends them: `cgroupReady` (when it
    // makes the cgroup while we clone), then `go` (when it writes the maps).
    let mut cgroup_ready = !plan.await_cgroup;
    let mut await_cgroup = || -> Result<(), Option<tsbox_core::Report>> {
        if !cgroup_ready {
            expect(&node, &NodeMsg::CgroupReady)?;
            cgroup_ready = true;
        }
        Ok(())
    };
    if plan.id_maps.is_none() {
        if let Err(r) = await_cgroup().and_then(|()| expect(&node, &NodeMsg::Go)) {
            return abort(r);
        }
    }
    let mut place = || await_cgroup().and_then(|()| cgroup::place(&plan.cgroup_procs, pid, &tr).map_err(Some));
    // v1 checks the mover against the moved process's ids unless the mover is
    // root: without root, place it before it changes them.
    let place_first = we_place && !nix::unistd::geteuid().is_root();
    if place_first {
        if let Err(r) = place() {
            return abort(r);
        }
    }
    let trees = match idmap::trees(&plan, pid, &tr) {
        Ok(t) => t,
        Err(r) => return abort(Some(r)),
    };
    let raw: Vec<i32> = trees.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    // If the child died before go, its status says why (the monitor reports it).
    let _ = mine.send_fds(&ChildGo::Go, &raw);
    drop(trees);
    // (4) The child builds its mounts meanwhile, and waits for this before it
    // enters its cgroup namespace.
    if we_place && !place_first {
        if let Err(r) = place() {
            return abort(r);
        }
    }
    let _ = mine.send(&ChildGo::Placed);
    let outcome = monitor::run(&node, mine, &c, &tr);
    if outcome.caller_gone && plan.join.is_none() {
        // Its processes are gone (PID 1 is reaped): the cgroups are empty, and
        // nobody else will remove them now (tsbox gc takes what is left).
        cgroup::remove(&plan, &tr);
    }
    outcome.status
}

/// The next message from Node, which must be `want`. `Err(None)` when Node
/// closed the channel (it gave up: a map or the cgroup could not be made).
fn expect(node: &Channel, want: &NodeMsg) -> Result<(), Option<tsbox_core::Report>> {
    match node.recv::<NodeMsg>() {
        Ok(Some(msg)) if msg == *want => Ok(()),
        Ok(Some(msg)) => Err(Some(report(
            Step::WaitGo,
            libc::EPROTO,
            &format!("expected {want:?} from Node, got {msg:?}"),
        ))),
        _ => Err(None),
    }
}
