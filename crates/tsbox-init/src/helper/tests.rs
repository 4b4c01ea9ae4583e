//! The helper's phases 1 to 6 ([`super::setup`]) through a recording host:
//! no root, no clone. Node's side of the launch channel is played by the
//! test, on a real socketpair, and so is the child's.

use std::os::fd::{OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;
use tsbox_core::{
    CgroupPhase, HelperMsg, IdMaps, JoinedNamespace, MapsPhase, Namespace, NetworkPhase, NodeMsg, ProcessPlan, Propagation, Report,
    RootMode, RootfsSpec, SandboxPlan, Step, TimeOffsets, ToChild, User, PLAN_VERSION,
};

use super::host::{Cloned, Host};
use super::monitor::Container;
use super::{setup, Setup};
use crate::channel::Channel;
use crate::trace::Trace;

const CHILD: i32 = 4242;

/// Writes down each call, in order, and answers as told.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
    root: bool,
    /// What `parent_pid` answers; `plan()` names this process.
    parent: Option<i32>,
    /// CLONE_INTO_CGROUP worked.
    placed_by_clone: bool,
    fail_clone: Option<Errno>,
    /// The first clone fails so, the next ones work.
    fail_first_clone: Option<Errno>,
    fail_maps: bool,
    fail_place: bool,
    /// The `move_self` call (0: the first) that fails.
    fail_move: Option<usize>,
    moves: usize,
    /// The child's end of its channel, as clone handed it over.
    child: Option<Channel>,
}

impl Host for Recorder {
    fn parent_pid(&self) -> i32 {
        self.parent.unwrap_or_else(|| std::process::id() as i32)
    }

    fn is_root(&self) -> bool {
        self.root
    }

    fn detach(&mut self) -> Result<(), Report> {
        self.calls.push("detach".into());
        Ok(())
    }

    fn open_cgroup(&mut self, dir: &str) -> Option<OwnedFd> {
        self.calls.push(format!("open_cgroup {dir}"));
        std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
    }

    fn clone_child(
        &mut self,
        _plan: &SandboxPlan,
        flags: u64,
        cgroup: Option<RawFd>,
        child: Channel,
        parent_only: &[RawFd],
        _tr: Trace,
    ) -> Result<Cloned, Errno> {
        assert_eq!(parent_only.len(), 2, "the child closes the helper's ends of both channels");
        self.calls.push(format!(
            "clone {}{}",
            super::clone::flag_names(flags),
            if cgroup.is_some() { " into the cgroup" } else { "" }
        ));
        if let Some(e) = self.fail_clone.or(self.fail_first_clone.take()) {
            return Err(e);
        }
        self.child = Some(child);
        Ok(Cloned {
            pid: Pid::from_raw(CHILD),
            pidfd: None,
            placed: cgroup.is_some() && self.placed_by_clone,
        })
    }

    fn write_maps(&mut self, pid: Pid, maps: &IdMaps, _tr: &Trace) -> Result<(), Report> {
        self.calls.push(format!("write_maps {pid} {}", maps.uid_map.trim()));
        if self.fail_maps {
            return Err(Report::new(Step::UidMap, libc::EINVAL).path(format!("/proc/{pid}/uid_map")));
        }
        Ok(())
    }

    fn place(&mut self, procs: &[String], pid: Pid, _tr: &Trace) -> Result<(), Report> {
        self.calls.push(format!("place {pid} {}", procs.join(" ")));
        if self.fail_place {
            return Err(Report::new(Step::Cgroup, libc::EACCES).path(procs[0].clone()));
        }
        Ok(())
    }

    fn move_self(&mut self, tasks: &[String]) -> Result<(), Report> {
        self.calls.push(format!("move_self {}", tasks.join(" ")));
        self.moves += 1;
        if self.fail_move == Some(self.moves - 1) {
            return Err(Report::new(Step::Cgroup, libc::ENOSPC).path(tasks[0].clone()));
        }
        Ok(())
    }

    fn idmapped_trees(&mut self, _plan: &SandboxPlan, pid: Pid, _tr: &Trace) -> Result<Vec<OwnedFd>, Report> {
        self.calls.push(format!("trees {pid}"));
        Ok(Vec::new())
    }

    fn kill(&mut self, c: &Container) {
        self.calls.push(format!("kill {}", c.pid));
    }

    fn time_namespace(&mut self, offsets: &TimeOffsets, _tr: &Trace) -> Result<(), Report> {
        self.calls.push(format!("timens {offsets:?}"));
        Ok(())
    }

    fn join_namespaces(&mut self, join: &[JoinedNamespace], _tr: &Trace) -> Result<(), Report> {
        for j in join {
            self.calls.push(format!("setns {} {}", j.ns.name(), j.path));
        }
        Ok(())
    }

    fn not_dumpable(&mut self) {
        self.calls.push("not_dumpable".into());
    }
}

/// A recording host that runs as root on a kernel with CLONE_INTO_CGROUP.
fn cloning_into_cgroups() -> Recorder {
    Recorder {
        placed_by_clone: true,
        ..as_root()
    }
}

/// A recording host that runs as root.
fn as_root() -> Recorder {
    Recorder {
        root: true,
        ..Default::default()
    }
}

fn plan() -> SandboxPlan {
    SandboxPlan {
        version: PLAN_VERSION,
        hostname: "box".into(),
        namespaces: Namespace::ALL.to_vec(),
        rootfs: RootfsSpec::Path {
            path: "/".into(),
            mode: RootMode::Readonly,
            idmap: false,
            nodev: false,
            layers: Vec::new(),
        },
        rootfs_propagation: Propagation::Private,
        storage_size: None,
        mounts: Vec::new(),
        init: true,
        maps: MapsPhase::Helper {
            maps: IdMaps {
                setgroups: "allow".into(),
                uid_map: "0 100000 65536".into(),
                gid_map: "0 100000 65536".into(),
            },
        },
        cgroup: CgroupPhase::None,
        cgroup_kept: vec![],
        usage_files: vec![],
        expected_process: None,
        network: NetworkPhase::Loopback,
        trace: false,
        trace_t0_ns: 0,
        parent_pid: std::process::id() as i32,
        detach: false,
        control: None,
        join: Vec::new(),
        sysctl: Vec::new(),
        console: None,
        time: None,
        domainname: None,
        reparent: false,
        create_container_hooks: None,
        runtime_hooks: false,
        seccomp_listener: None,
        log_max_size: None,
    }
}

pub(crate) fn process() -> ProcessPlan {
    ProcessPlan {
        argv: vec!["true".into()],
        env: Vec::new(),
        cwd: "/".into(),
        user: User {
            user: "0".into(),
            group: None,
            additional_groups: Vec::new(),
        },
        capabilities: None,
        no_new_privileges: true,
        rlimits: Vec::new(),
        seccomp: None,
        tty: None,
        trace: false,
        umask: None,
        personality: None,
        io_priority: None,
        scheduler: None,
        start_container_hooks: None,
        memory_policy: None,
        seccomp_agent: None,
    }
}

const V1_PROCS: &str = "/sys/fs/cgroup/pids/tsbox/x/cgroup.procs";

fn v2() -> CgroupPhase {
    CgroupPhase::CloneInto {
        dir: "/sys/fs/cgroup/tsbox/x".into(),
        procs: vec!["/sys/fs/cgroup/tsbox/x/cgroup.procs".into()],
    }
}

fn v1(made_by_node: bool) -> CgroupPhase {
    CgroupPhase::Place {
        procs: vec![V1_PROCS.into()],
        made_by_node,
    }
}

/// What one run of phases 1 to 6 did: its result, the calls, and what Node
/// and the child were sent.
struct Run {
    result: Result<Setup, i32>,
    calls: Vec<String>,
    to_node: Vec<HelperMsg>,
    to_child: Vec<ToChild>,
}

/// Node sends `messages` (the plan first, as it does), then phases 1 to 6 run.
fn run(mut host: Recorder, messages: Vec<NodeMsg>) -> Run {
    let (node_side, helper_side) = Channel::pair().unwrap();
    for m in &messages {
        node_side.send(m).unwrap();
    }
    let result = setup(&mut host, &helper_side);
    drop(helper_side);
    Run {
        to_node: drain(&node_side),
        to_child: host.child.as_ref().map(drain).unwrap_or_default(),
        calls: host.calls,
        result,
    }
}

fn drain<T: serde::de::DeserializeOwned>(ch: &Channel) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(Some((m, _))) = ch.recv_fds_nonblocking::<T>() {
        out.push(m);
    }
    out
}

fn plan_msg(p: SandboxPlan) -> NodeMsg {
    NodeMsg::Plan(Box::new(p))
}

fn failed(run: &Run) -> &Report {
    match run.to_node.last() {
        Some(HelperMsg::Failed(r)) => r,
        other => panic!("expected a failure report, Node got {other:?}"),
    }
}

#[test]
fn root_on_v2_clones_into_the_cgroup_and_places_nothing_by_pid() {
    let mut p = plan();
    p.cgroup = v2();
    let r = run(cloning_into_cgroups(), vec![plan_msg(p), NodeMsg::Process(Box::new(process()))]);
    assert_eq!(
        r.calls,
        [
            "open_cgroup /sys/fs/cgroup/tsbox/x",
            "clone CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS into the cgroup",
            "write_maps 4242 0 100000 65536",
            "trees 4242",
        ]
    );
    assert!(
        matches!(r.to_node.as_slice(), [HelperMsg::Cloned { pid: CHILD, .. }]),
        "{:?}",
        r.to_node
    );
    assert_eq!(r.to_child, [ToChild::Go, ToChild::Placed]);
    let s = r.result.unwrap_or_else(|code| panic!("setup failed with {code}"));
    assert_eq!(s.container.pid.as_raw(), CHILD);
    assert!(s.cgroup_dir.is_some(), "exec'd processes go into the same cgroup directory");
    // Nothing was awaited before go, so the process pipelined with the plan
    // is still in the channel, for the monitor.
    assert!(s.process.is_none());
}

#[test]
fn joined_namespaces_are_entered_before_the_clone_and_left_out_of_its_flags() {
    let mut p = plan();
    p.cgroup = v2();
    p.join = vec![
        JoinedNamespace {
            ns: Namespace::Net,
            path: "/proc/77/ns/net".into(),
        },
        JoinedNamespace {
            ns: Namespace::Pid,
            path: "/proc/77/ns/pid_for_children".into(),
        },
    ];
    let r = run(cloning_into_cgroups(), vec![plan_msg(p)]);
    assert_eq!(
        r.calls[..4],
        [
            "setns net /proc/77/ns/net",
            "setns pid /proc/77/ns/pid_for_children",
            "not_dumpable",
            "open_cgroup /sys/fs/cgroup/tsbox/x",
        ]
    );
    assert_eq!(
        r.calls[4],
        "clone CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS into the cgroup"
    );
}

/// The processes of a joined pid namespace see the child from its clone on,
/// a copy of the helper with the host's root and cwd: it starts not
/// dumpable. In a pid namespace of its own it stays dumpable until `ready`
/// (an ordinary user's newuidmap and pasta need that).
#[test]
fn a_child_cloned_into_a_joined_pid_namespace_starts_not_dumpable() {
    let mut p = plan();
    p.join = vec![JoinedNamespace {
        ns: Namespace::Pid,
        path: "/proc/77/ns/pid".into(),
    }];
    let r = run(as_root(), vec![plan_msg(p)]);
    let hidden = r.calls.iter().position(|c| c == "not_dumpable").expect("made not dumpable");
    let clone = r.calls.iter().position(|c| c.starts_with("clone")).expect("a clone");
    assert!(hidden < clone, "{:?}", r.calls);

    for join in [
        Vec::new(),
        vec![JoinedNamespace {
            ns: Namespace::Net,
            path: "/proc/77/ns/net".into(),
        }],
    ] {
        let mut p = plan();
        p.join = join;
        let r = run(Recorder::default(), vec![plan_msg(p)]);
        assert!(!r.calls.iter().any(|c| c == "not_dumpable"), "{:?}", r.calls);
    }
}

#[test]
fn a_time_namespace_is_made_for_the_child_before_the_clone() {
    let mut p = plan();
    p.time = Some(TimeOffsets {
        monotonic: None,
        boottime: Some(tsbox_core::ClockOffset { secs: 60, nanosecs: 0 }),
    });
    let r = run(as_root(), vec![plan_msg(p)]);
    let timens = r.calls.iter().position(|c| c.starts_with("timens")).expect("a time namespace");
    let clone = r.calls.iter().position(|c| c.starts_with("clone")).expect("a clone");
    assert!(timens < clone, "{:?}", r.calls);
}

#[test]
fn a_kernel_without_clone_into_cgroup_places_the_child_by_pid() {
    let mut p = plan();
    p.cgroup = v2();
    let r = run(
        Recorder {
            root: true,
            placed_by_clone: false,
            ..Default::default()
        },
        vec![plan_msg(p)],
    );
    assert_eq!(r.calls[3..], ["trees 4242", "place 4242 /sys/fs/cgroup/tsbox/x/cgroup.procs"]);
    assert_eq!(r.to_child, [ToChild::Go, ToChild::Placed]);
    assert!(r.result.is_ok());
}

#[test]
fn root_on_v1_places_the_child_after_go_once_node_made_the_cgroup() {
    let mut p = plan();
    p.cgroup = v1(true);
    // Node says `cgroup` after the process: the helper takes both, in Node's order.
    let r = run(as_root(), vec![plan_msg(p), NodeMsg::Process(Box::new(process())), NodeMsg::Cgroup]);
    assert_eq!(r.calls[2..], ["trees 4242", format!("place 4242 {V1_PROCS}").as_str()]);
    assert_eq!(r.to_child, [ToChild::Go, ToChild::Placed]);
    assert!(matches!(r.result.unwrap().process, Some(super::Pending::Run(_))));
}

const V1_TASKS: [&str; 2] = ["/sys/fs/cgroup/pids/tsbox/x/tasks", "/sys/fs/cgroup/memory/tsbox/x/tasks"];
const V1_HOME: [&str; 2] = ["/sys/fs/cgroup/pids/tasks", "/sys/fs/cgroup/memory/user/tasks"];
const HYBRID_DIR: &str = "/sys/fs/cgroup/unified/tsbox/x";

/// The recorder's line for a move of the helper's thread through `tasks`.
fn moved(tasks: &[&str]) -> String {
    format!("move_self {}", tasks.join(" "))
}

fn entered(made_by_node: bool) -> CgroupPhase {
    CgroupPhase::Enter {
        tasks: V1_TASKS.map(String::from).to_vec(),
        home: V1_HOME.map(String::from).to_vec(),
        dir: Some(HYBRID_DIR.into()),
        procs: vec![V1_PROCS.into(), format!("{HYBRID_DIR}/cgroup.procs")],
        made_by_node,
    }
}

/// `setup` of a plan whose cgroup is entered (`entered(made_by_node)`), on
/// `host`, with `then` from Node after the plan.
fn run_entered(host: Recorder, made_by_node: bool, then: Vec<NodeMsg>) -> Run {
    let mut p = plan();
    p.cgroup = entered(made_by_node);
    run(host, [vec![plan_msg(p)], then].concat())
}

#[test]
fn root_on_hybrid_enters_the_cgroups_clones_there_and_goes_home_once_the_child_has_go() {
    // Node says `cgroup` once it made the cgroups, after the process.
    let r = run_entered(
        cloning_into_cgroups(),
        true,
        vec![NodeMsg::Process(Box::new(process())), NodeMsg::Cgroup],
    );
    assert_eq!(
        r.calls,
        [
            moved(&V1_TASKS),
            format!("open_cgroup {HYBRID_DIR}"),
            "clone CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS into the cgroup".into(),
            // The child's maps and `go` first, then home, while it mounts.
            "write_maps 4242 0 100000 65536".into(),
            "trees 4242".into(),
            moved(&V1_HOME),
        ],
        "nothing is placed by pid"
    );
    assert_eq!(r.to_child, [ToChild::Go, ToChild::Placed]);
    let s = r.result.unwrap_or_else(|code| panic!("setup failed with {code}"));
    assert!(
        matches!(s.process, Some(super::Pending::Run(_))),
        "the process that came first is kept"
    );
    assert!(s.cgroup_dir.is_none(), "exec'd processes go in by pid, into every hierarchy");
}

#[test]
fn an_entering_helper_clones_nothing_until_node_made_the_cgroup() {
    let mut p = plan();
    p.cgroup = entered(true);
    // Node gives up (its mkdir failed) and closes the channel.
    let (node_side, helper_side) = Channel::pair().unwrap();
    node_side.send(&plan_msg(p)).unwrap();
    node_side.send(&NodeMsg::Process(Box::new(process()))).unwrap();
    drop(node_side);
    let mut host = as_root();
    assert_eq!(setup(&mut host, &helper_side).err(), Some(125));
    assert!(host.calls.is_empty(), "{:?}", host.calls);
}

#[test]
fn a_cgroup_the_helper_cannot_enter_is_reported_and_it_goes_home() {
    let host = Recorder {
        fail_move: Some(0),
        ..as_root()
    };
    let r = run_entered(host, true, vec![NodeMsg::Cgroup]);
    assert!(r.result.is_err());
    assert_eq!(r.calls, [moved(&V1_TASKS), moved(&V1_HOME)]);
    let f = failed(&r);
    assert_eq!(
        (f.step, f.errno, f.path.as_deref()),
        (Step::Cgroup, libc::ENOSPC, Some(V1_TASKS[0]))
    );
}

#[test]
fn a_helper_that_cannot_go_home_kills_the_child_rather_than_monitor_from_its_cgroup() {
    let host = Recorder {
        fail_move: Some(1),
        ..cloning_into_cgroups()
    };
    let r = run_entered(host, false, vec![]);
    assert!(r.result.is_err());
    assert_eq!(r.calls.last().map(String::as_str), Some("kill 4242"));
    assert_eq!(failed(&r).path.as_deref(), Some(V1_HOME[0]));
    // Home comes before `placed`: the child never got further than `go`.
    assert_eq!(r.to_child, [ToChild::Go]);
}

#[test]
fn an_entered_helper_goes_home_before_it_waits_for_nodes_network() {
    let mut p = plan();
    p.cgroup = entered(true);
    p.network = NetworkPhase::Node;
    let r = run(cloning_into_cgroups(), vec![plan_msg(p), NodeMsg::Cgroup, NodeMsg::Network]);
    assert_eq!(
        r.calls[3..],
        [
            "write_maps 4242 0 100000 65536".to_string(),
            // Before Node's interfaces, which take their time: not after `go`.
            moved(&V1_HOME),
            "trees 4242".into(),
        ]
    );
    assert_eq!(r.to_child, [ToChild::Go, ToChild::Placed]);
    assert!(r.result.is_ok());
}

#[test]
fn a_failure_before_go_once_entered_kills_the_child_and_goes_home_before_node_hears() {
    let host = Recorder {
        fail_maps: true,
        ..cloning_into_cgroups()
    };
    let r = run_entered(host, false, vec![]);
    assert!(r.result.is_err());
    assert_eq!(
        r.calls[3..],
        ["write_maps 4242 0 100000 65536".to_string(), "kill 4242".into(), moved(&V1_HOME)]
    );
    assert_eq!(failed(&r).step, Step::UidMap);
    assert!(r.to_child.is_empty());
}

#[test]
fn a_clone_that_hits_a_pids_limit_once_entered_is_made_again_outside_and_placed_by_pid() {
    let host = Recorder {
        fail_first_clone: Some(Errno::EAGAIN),
        ..cloning_into_cgroups()
    };
    let r = run_entered(host, true, vec![NodeMsg::Cgroup]);
    let clone = "clone CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS into the cgroup";
    assert_eq!(
        r.calls,
        [
            moved(&V1_TASKS),
            format!("open_cgroup {HYBRID_DIR}"),
            clone.to_string(),
            moved(&V1_HOME),
            clone.to_string(),
            "write_maps 4242 0 100000 65536".into(),
            "trees 4242".into(),
            // The v1 hierarchies by pid; clone3 took the cgroup2 directory.
            format!("place 4242 {V1_PROCS}"),
        ]
    );
    assert_eq!(r.to_child, [ToChild::Go, ToChild::Placed]);
    assert!(r.result.is_ok());
}

#[test]
fn a_clone_that_fails_otherwise_once_entered_is_reported_after_going_home() {
    let host = Recorder {
        fail_first_clone: Some(Errno::ENOMEM),
        ..as_root()
    };
    let r = run_entered(host, false, vec![]);
    assert!(r.result.is_err());
    assert_eq!(r.calls.last(), Some(&moved(&V1_HOME)));
    assert_eq!((failed(&r).step, failed(&r).errno), (Step::Clone, libc::ENOMEM));
}

#[test]
fn an_entering_helper_on_a_kernel_without_clone_into_cgroup_places_the_cgroup2_directory_by_pid() {
    let r = run_entered(as_root(), false, vec![]);
    assert_eq!(
        r.calls[4..],
        [
            "trees 4242".to_string(),
            moved(&V1_HOME),
            format!("place 4242 {HYBRID_DIR}/cgroup.procs")
        ]
    );
    assert!(r.result.is_ok());
}

#[test]
fn a_created_containers_process_is_held_for_the_monitor_not_run() {
    let mut p = plan();
    p.cgroup = v1(true);
    let r = run(as_root(), vec![plan_msg(p), NodeMsg::Hold(Box::new(process())), NodeMsg::Cgroup]);
    assert_eq!(
        r.to_child,
        [ToChild::Go, ToChild::Placed],
        "the child hears of no process before start"
    );
    assert!(matches!(r.result.unwrap().process, Some(super::Pending::Hold(_))));
}

#[test]
fn without_root_on_v1_the_child_is_placed_before_go() {
    // v1 checks the mover against the moved process's ids unless it is root.
    let mut p = plan();
    p.cgroup = v1(false);
    p.maps = MapsPhase::Node;
    let r = run(Recorder::default(), vec![plan_msg(p), NodeMsg::Maps]);
    assert_eq!(
        r.calls[1..],
        [format!("place 4242 {V1_PROCS}").as_str(), "trees 4242"],
        "no write_maps: Node wrote them with newuidmap"
    );
    assert_eq!(r.to_child, [ToChild::Go, ToChild::Placed]);
    assert!(r.result.is_ok());
}

#[test]
fn go_waits_for_nodes_maps_and_network_hook() {
    let mut p = plan();
    p.maps = MapsPhase::Node;
    p.network = NetworkPhase::Node;
    // Only the maps: the network hook has not said it is done.
    let (node_side, helper_side) = Channel::pair().unwrap();
    node_side.send(&plan_msg(p)).unwrap();
    node_side.send(&NodeMsg::Maps).unwrap();
    let mut host = Recorder::default();
    std::thread::scope(|s| {
        let setup = s.spawn(|| setup(&mut host, &helper_side).is_ok());
        assert!(matches!(node_side.recv::<HelperMsg>(), Ok(Some(HelperMsg::Cloned { .. }))));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!setup.is_finished(), "go went before Node's network hook was done");
        node_side.send(&NodeMsg::Network).unwrap();
        assert!(setup.join().unwrap());
    });
    assert_eq!(host.calls.last().map(String::as_str), Some("trees 4242"));
    assert_eq!(drain::<ToChild>(host.child.as_ref().unwrap()), [ToChild::Go, ToChild::Placed]);
}

#[test]
fn a_map_the_helper_cannot_write_kills_the_child_and_reports_it() {
    let r = run(
        Recorder {
            root: true,
            fail_maps: true,
            ..Default::default()
        },
        vec![plan_msg(plan())],
    );
    assert_eq!(r.calls[1..], ["write_maps 4242 0 100000 65536", "kill 4242"]);
    let report = failed(&r);
    assert_eq!((report.step, report.errno), (Step::UidMap, libc::EINVAL));
    assert_eq!(r.result.err(), Some(125));
    assert!(r.to_child.is_empty(), "the child never hears go");
}

#[test]
fn a_cgroup_the_helper_cannot_join_kills_the_child_and_reports_it() {
    let mut p = plan();
    p.cgroup = v1(false);
    let r = run(
        Recorder {
            root: true,
            fail_place: true,
            ..Default::default()
        },
        vec![plan_msg(p)],
    );
    assert_eq!(r.calls.last().map(String::as_str), Some("kill 4242"));
    assert_eq!(failed(&r).step, Step::Cgroup);
    assert_eq!(failed(&r).path.as_deref(), Some(V1_PROCS));
    // go went first (the child mounts while it is placed); `placed` never does.
    assert_eq!(r.to_child, [ToChild::Go]);
}

#[test]
fn node_giving_up_while_it_is_awaited_kills_the_child_without_a_report() {
    let mut p = plan();
    p.cgroup = v1(true);
    let (node_side, helper_side) = Channel::pair().unwrap();
    node_side.send(&plan_msg(p)).unwrap();
    let mut host = as_root();
    let result = std::thread::scope(|s| {
        let setup = s.spawn(|| setup(&mut host, &helper_side).err());
        assert!(matches!(node_side.recv::<HelperMsg>(), Ok(Some(HelperMsg::Cloned { .. }))));
        // Node could not make the cgroup: it closes the channel.
        drop(node_side);
        setup.join().unwrap()
    });
    assert_eq!(result, Some(125));
    assert_eq!(host.calls.last().map(String::as_str), Some("kill 4242"));
}

#[test]
fn a_signal_before_the_container_runs_kills_it() {
    let mut p = plan();
    p.maps = MapsPhase::Node;
    let r = run(Recorder::default(), vec![plan_msg(p), NodeMsg::Signal { signo: 15 }]);
    assert_eq!(r.calls.last().map(String::as_str), Some("kill 4242"));
    assert_eq!(r.result.err(), Some(125));
    assert!(
        matches!(r.to_node.as_slice(), [HelperMsg::Cloned { .. }]),
        "no report: {:?}",
        r.to_node
    );
}

#[test]
fn a_message_out_of_turn_is_a_protocol_error() {
    let mut p = plan();
    p.maps = MapsPhase::Node;
    // `cgroup` when the plan says Node makes none.
    let r = run(Recorder::default(), vec![plan_msg(p), NodeMsg::Cgroup]);
    let report = failed(&r);
    assert_eq!((report.step, report.errno), (Step::WaitGo, libc::EPROTO));
    assert_eq!(r.calls.last().map(String::as_str), Some("kill 4242"));
}

#[test]
fn a_plan_from_another_release_or_not_a_plan_is_refused_before_anything_is_made() {
    let mut p = plan();
    p.version = PLAN_VERSION + 1;
    let r = run(Recorder::default(), vec![plan_msg(p)]);
    let report = failed(&r);
    assert_eq!((report.step, report.errno), (Step::ReadPlan, libc::EPROTO));
    assert!(report.hint.as_deref().unwrap().contains("reinstall"));
    assert!(r.calls.is_empty());
    let r = run(Recorder::default(), vec![NodeMsg::Maps]);
    assert_eq!(failed(&r).detail, "the first message was not a plan");
    assert!(r.calls.is_empty());
}

#[test]
fn a_caller_that_is_gone_already_gets_nothing_made() {
    let r = run(
        Recorder {
            parent: Some(1),
            ..Default::default()
        },
        vec![plan_msg(plan())],
    );
    assert_eq!(r.result.err(), Some(125));
    assert!(r.calls.is_empty());
    assert!(r.to_node.is_empty());
}

#[test]
fn a_refused_clone_names_its_flags() {
    let mut p = plan();
    p.namespaces = vec![Namespace::User, Namespace::Pid];
    let r = run(
        Recorder {
            fail_clone: Some(Errno::ENOSPC),
            ..Default::default()
        },
        vec![plan_msg(p)],
    );
    let report = failed(&r);
    assert_eq!((report.step, report.errno), (Step::Clone, libc::ENOSPC));
    assert_eq!(report.detail, "clone with CLONE_NEWUSER|CLONE_NEWPID");
    assert!(report.hint.is_some(), "ENOSPC on clone: the user namespace limit");
    assert!(!r.calls.iter().any(|c| c.starts_with("kill")), "nothing to kill");
}

#[test]
fn a_detached_monitor_leaves_the_callers_tree_before_it_clones() {
    let mut p = plan();
    p.detach = true;
    let r = run(Recorder::default(), vec![plan_msg(p)]);
    assert_eq!(r.calls[0], "detach");
    assert!(r.calls[1].starts_with("clone "));
    assert!(r.result.is_ok());
}

/// The monitor (phases 7 to 10) with an ordinary child process as the
/// container's PID 1 (`sleep`, no namespaces): the test plays Node and the
/// child's side of its channel, and ends PID 1 itself.
mod monitor_phases {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use nix::errno::Errno;
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag};
    use nix::unistd::Pid;
    use tsbox_core::{ChildMsg, ControlRequest, HelperMsg, NodeMsg, Report, Step, ToChild};

    use super::{plan, process};
    use crate::channel::Channel;
    use crate::helper::monitor::{self, Container, Outcome};
    use crate::helper::Pending;
    use crate::trace::Trace;

    /// What plays the container's PID 1.
    #[derive(Clone, Copy)]
    enum StandIn {
        /// `sleep 60`: a command that has exec'd.
        Sleep,
        /// A copy of this process that has not exec'd, and is named
        /// `tsbox-init`: PID 1 in its setup, as the helper's clone is.
        InSetup,
        /// A command the container called `tsbox-init` (a link to the
        /// program), exec'd with the arguments.
        NamedTsboxInit(&'static str, &'static [&'static str]),
    }

    /// A PID 1 stand-in, a child of this process, with a pidfd as the
    /// helper's clone gives one.
    fn pid1(stand_in: StandIn) -> Container {
        let pid = match stand_in {
            StandIn::Sleep => spawn(Command::new("sleep").arg("60")),
            StandIn::NamedTsboxInit(program, args) => {
                static LINKS: AtomicUsize = AtomicUsize::new(0);
                let dir = std::env::temp_dir().join(format!(
                    "tsbox-monitor-test-bin-{}-{}",
                    std::process::id(),
                    LINKS.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&dir).unwrap();
                let link = dir.join("tsbox-init");
                std::os::unix::fs::symlink(program, &link).unwrap();
                let pid = spawn(Command::new(&link).args(args));
                // Its name was taken at exec.
                std::fs::remove_dir_all(&dir).unwrap();
                pid
            }
            // Forked by a thread of that name, the copy has it from birth.
            StandIn::InSetup => std::thread::Builder::new()
                .name("tsbox-init".into())
                .spawn(fork_a_copy)
                .unwrap()
                .join()
                .unwrap(),
        };
        // SAFETY: pidfd_open on our own child; a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        assert!(fd >= 0, "pidfd_open");
        // SAFETY: a new descriptor nothing else owns.
        let pidfd = Some(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        Container { pid, pidfd }
    }

    /// A copy of this process that waits to be killed, holding none of the
    /// tests' descriptors (their channels close when the tests drop them).
    fn fork_a_copy() -> Pid {
        // SAFETY: the child makes only async-signal-safe calls (the other
        // tests' threads are in this process) and never returns.
        match unsafe { libc::fork() } {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => unsafe {
                libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0);
                loop {
                    libc::pause();
                }
            },
            pid => Pid::from_raw(pid),
        }
    }

    /// Starts `cmd`; its pid, for the monitor to reap (not its `Child`).
    fn spawn(cmd: &mut Command) -> Pid {
        Pid::from_raw(cmd.spawn().expect("spawn the stand-in").id() as i32)
    }

    fn kill(pid: Pid, sig: i32) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(pid.as_raw(), sig) };
    }

    /// Runs the monitor on a thread while `play` acts as Node (first
    /// channel) and the child (second), then returns how it ended.
    fn monitor(p: tsbox_core::SandboxPlan, with_process: bool, play: impl FnOnce(Channel, Channel, Pid) + Send) -> Outcome {
        run_monitor(p, with_process.then(|| Pending::Run(Box::new(process()))), StandIn::Sleep, play)
    }

    fn run_monitor(
        p: tsbox_core::SandboxPlan,
        pending: Option<Pending>,
        stand_in: StandIn,
        play: impl FnOnce(Channel, Channel, Pid) + Send,
    ) -> Outcome {
        let (node, node_side) = Channel::pair().unwrap();
        let (mine, theirs) = Channel::pair().unwrap();
        let c = pid1(stand_in);
        let pid = c.pid;
        let outcome = std::thread::scope(|s| {
            let m = s.spawn(|| {
                let tr = Trace::new(false, 0);
                monitor::run(&node, mine, &c, &p, pending, None, None, &tr, &|| {})
            });
            // A failed assertion ends PID 1 (through its pidfd: no pid
            // reuse), else the monitor would wait for it, and the test with it.
            if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| play(node_side, theirs, pid))) {
                c.signal(libc::SIGKILL);
                let _ = m.join();
                std::panic::resume_unwind(panic);
            }
            m.join().unwrap()
        });
        // The monitor reaped it: nothing is left to wait for.
        let reaped = waitpid(pid, Some(WaitPidFlag::WNOHANG)) == Err(Errno::ECHILD);
        assert!(reaped, "PID 1 was reaped by the monitor");
        outcome
    }

    #[test]
    fn relays_ready_started_and_how_init_says_the_command_ended() {
        let outcome = monitor(plan(), true, |node, child, pid| {
            // Phase 8: the process that came with the plan goes to the child at once.
            assert!(matches!(child.recv::<ToChild>(), Ok(Some(ToChild::Process(p))) if p.argv == ["true"]));
            child.send(&ChildMsg::Ready { namespaces: Vec::new() }).unwrap();
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Ready));
            child.send(&ChildMsg::Started).unwrap();
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Started { pid: pid.as_raw() }));
            child
                .send(&ChildMsg::Ended {
                    code: Some(3),
                    signal: None,
                })
                .unwrap();
            kill(pid, libc::SIGKILL);
            match node.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { code, signal, .. }) => assert_eq!((code, signal), (Some(3), None)),
                other => panic!("expected exited, got {other:?}"),
            }
        });
        assert_eq!(outcome.status, 3);
        assert!(!outcome.caller_gone);
    }

    #[test]
    fn the_usage_is_read_when_init_says_the_command_ended_before_pid1_is_gone() {
        // A FIFO as the usage file: the monitor's open waits for a writer,
        // and this writer's non-blocking open succeeds only once the
        // monitor has the FIFO open. PID 1 lives on until then, so the
        // file is read at `ended`, not after PID 1's exit.
        let dir = std::env::temp_dir().join(format!("tsbox-usage-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("memory.peak");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut p = plan();
        p.usage_files = vec![
            fifo.to_string_lossy().into_owned(),
            dir.join("missing").to_string_lossy().into_owned(),
        ];
        monitor(p, true, |node, child, pid| {
            let _ = child.recv::<ToChild>();
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            child
                .send(&ChildMsg::Ended {
                    code: Some(0),
                    signal: None,
                })
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut w = loop {
                match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&fifo) {
                    Ok(w) => break w,
                    Err(e) if e.raw_os_error() == Some(libc::ENXIO) && std::time::Instant::now() < deadline => std::thread::yield_now(),
                    Err(e) => {
                        // Let the monitor's late read through, then fail.
                        kill(pid, libc::SIGKILL);
                        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
                        panic!("the monitor did not read the usage while PID 1 was alive: {e}");
                    }
                }
            };
            std::io::Write::write_all(&mut w, b"4096\n").unwrap();
            drop(w);
            kill(pid, libc::SIGKILL);
            match node.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { code, usage, .. }) => {
                    assert_eq!(code, Some(0));
                    assert_eq!(usage, vec![Some("4096\n".to_string()), None]);
                }
                other => panic!("expected exited, got {other:?}"),
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_word_from_init_the_usage_is_read_once_pid1_has_exited() {
        let dir = std::env::temp_dir().join(format!("tsbox-usage-test-killed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pids.peak");
        std::fs::write(&file, "3\n").unwrap();
        let mut p = plan();
        p.usage_files = vec![file.to_string_lossy().into_owned()];
        monitor(p, true, |node, child, pid| {
            let _ = child.recv::<ToChild>();
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            kill(pid, libc::SIGKILL);
            match node.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { signal, usage, .. }) => {
                    assert_eq!(signal, Some(libc::SIGKILL));
                    assert_eq!(usage, vec![Some("3\n".to_string())]);
                }
                other => panic!("expected exited, got {other:?}"),
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_process_sent_after_ready_reaches_the_child_then() {
        monitor(plan(), false, |node, child, pid| {
            child.send(&ChildMsg::Ready { namespaces: Vec::new() }).unwrap();
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Ready));
            node.send(&NodeMsg::Process(Box::new(process()))).unwrap();
            assert!(matches!(child.recv::<ToChild>(), Ok(Some(ToChild::Process(_)))));
            kill(pid, libc::SIGKILL);
        });
    }

    #[test]
    fn delivers_nodes_signals_to_pid1_and_reports_the_signal_it_died_of() {
        let outcome = monitor(plan(), true, |node, child, _pid| {
            let _ = child.recv::<ToChild>();
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            node.send(&NodeMsg::Signal { signo: libc::SIGTERM }).unwrap();
            match node.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { code, signal, .. }) => assert_eq!((code, signal), (None, Some(libc::SIGTERM))),
                other => panic!("expected exited, got {other:?}"),
            }
        });
        assert_eq!(outcome.status, 128 + libc::SIGTERM);
    }

    #[test]
    fn a_setup_step_that_fails_in_the_child_reaches_node_as_its_report() {
        let outcome = monitor(plan(), true, |node, child, pid| {
            let r = Report::new(Step::Exec, libc::ENOENT).path("nope");
            child.send(&ChildMsg::Failed(r.clone())).unwrap();
            kill(pid, libc::SIGKILL);
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Failed(r)));
        });
        assert_eq!(outcome.status, 127, "Docker's status for a command not found");
    }

    #[test]
    fn pid1_dying_during_its_setup_is_a_start_failure_that_names_the_signal() {
        let pending = Some(Pending::Run(Box::new(process())));
        run_monitor(plan(), pending, StandIn::InSetup, |node, child, pid| {
            kill(pid, libc::SIGKILL);
            // Its end of the channel closes with it: once it is exiting, as
            // the kernel does it (unless the monitor has reaped it already).
            let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
            drop(child);
            match node.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Failed(r)) => {
                    assert_eq!(r.step, Step::Start);
                    assert!(r.detail.contains("killed by signal 9"), "{}", r.detail);
                    assert!(r.hint.unwrap().contains("OOM"));
                }
                other => panic!("expected a failure, got {other:?}"),
            }
        });
    }

    /// The channel closes at exec; a command that is running then has
    /// started, whatever it is called: the container chooses its commands'
    /// names, `tsbox-init` too (here, the stand-in's).
    #[test]
    fn a_running_command_named_tsbox_init_has_started() {
        let sleep = StandIn::NamedTsboxInit("/bin/sleep", &["60"]);
        let outcome = run_monitor(plan(), Some(Pending::Run(Box::new(process()))), sleep, |node, child, pid| {
            assert!(matches!(child.recv::<ToChild>(), Ok(Some(ToChild::Process(_)))));
            // Its exec closes the channel; it runs on.
            drop(child);
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Started { pid: pid.as_raw() }));
            kill(pid, libc::SIGTERM);
            match node.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { code, signal, .. }) => assert_eq!((code, signal), (None, Some(libc::SIGTERM))),
                other => panic!("expected exited, got {other:?}"),
            }
        });
        assert_eq!(outcome.status, 128 + libc::SIGTERM);
    }

    /// A command called `tsbox-init` that ends at once (127, as busybox's
    /// "applet not found"): it has exited by the time the monitor hears its
    /// channel close. It exec'd, so its status is the command's, not a start
    /// failure, which the pool would retry on a new sandbox, running the
    /// command again.
    #[test]
    fn a_command_named_tsbox_init_that_ends_at_once_ran_and_its_status_is_its_own() {
        let exits = StandIn::NamedTsboxInit("/bin/sh", &["-c", "exit 127"]);
        let outcome = run_monitor(plan(), Some(Pending::Run(Box::new(process()))), exits, |node, child, pid| {
            assert!(matches!(child.recv::<ToChild>(), Ok(Some(ToChild::Process(_)))));
            // Exited, not reaped: its name, flags and status stay readable.
            let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
            drop(child);
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Started { pid: pid.as_raw() }));
            match node.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { code, signal, .. }) => assert_eq!((code, signal), (Some(127), None)),
                other => panic!("expected exited, got {other:?}"),
            }
        });
        assert_eq!(outcome.status, 127);
    }

    /// What the monitor, an exec and init ask of a process whose channel
    /// closed: the kernel's PF_FORKNOEXEC, on a live process or a zombie.
    #[test]
    fn still_setting_up_is_whether_the_process_has_not_execd_whatever_its_name() {
        let copy = pid1(StandIn::InSetup);
        let alive = monitor::still_setting_up(copy.pid);
        kill(copy.pid, libc::SIGKILL);
        let _ = waitid(Id::Pid(copy.pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
        let zombie = monitor::still_setting_up(copy.pid);
        let _ = waitpid(copy.pid, None);
        let gone = monitor::still_setting_up(copy.pid);
        assert_eq!(
            (alive, zombie, gone),
            (true, true, false),
            "a copy alive, a zombie, reaped (nothing to tell)"
        );
        let cmd = pid1(StandIn::NamedTsboxInit("/bin/sh", &["-c", "exit 127"]));
        let _ = waitid(Id::Pid(cmd.pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
        let exited = monitor::still_setting_up(cmd.pid);
        let _ = waitpid(cmd.pid, None);
        assert!(!exited, "a command called tsbox-init that has exited");
        // A name that mimics the fields after it does not pass for them.
        assert!(!monitor::never_execd(b"7 (x) S 1 1 1 0 -1 64) R 0 0 0 0 -1 4194560 0 0"));
        assert!(monitor::never_execd(b"7 (x) S 1 1 1 0 -1 4194560) R 0 0 0 0 -1 64 0 0"));
        assert!(!monitor::never_execd(b"garbage"));
    }

    #[test]
    fn an_attached_container_dies_with_its_caller() {
        let outcome = monitor(plan(), true, |node, child, _pid| {
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            // The caller is gone: the monitor kills PID 1 (else this test would hang).
            drop(node);
            drop(child);
        });
        assert!(outcome.caller_gone);
        assert_eq!(outcome.status, 128 + libc::SIGKILL);
    }

    /// A container's state directory for a test: its state.json (as Node
    /// writes it at create) and where its control socket goes.
    fn state_dir(label: &str, id: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tsbox-monitor-test-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), format!(r#"{{"id": "{id}", "status": "created"}}"#)).unwrap();
        let control = dir.join("control.sock");
        (dir, control)
    }

    /// The state.json in `dir`, as the monitor left it.
    fn read_state(dir: &std::path::Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap()
    }

    /// A client of the monitor's control socket at `path`.
    fn client(path: &std::path::Path) -> Channel {
        let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
        connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
        Channel::from_owned(fd)
    }

    #[test]
    fn a_created_containers_process_waits_for_start_from_any_process_and_runs_once() {
        let (dir, control) = state_dir("start", "s");
        let mut p = plan();
        p.detach = true;
        p.control = Some(control.to_str().unwrap().into());
        run_monitor(p, Some(Pending::Hold(Box::new(process()))), StandIn::Sleep, |node, child, pid| {
            child.send(&ChildMsg::Ready { namespaces: Vec::new() }).unwrap();
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Ready));
            std::thread::sleep(std::time::Duration::from_millis(30));
            assert!(child.recv_fds_nonblocking::<ToChild>().is_err(), "the held process waits for start");
            // The creator is gone; another process starts it.
            drop(node);
            let starter = client(&control);
            starter.send(&ControlRequest::Start).unwrap();
            assert!(matches!(child.recv::<ToChild>(), Ok(Some(ToChild::Process(p))) if p.argv == ["true"]));
            child.send(&ChildMsg::Started).unwrap();
            assert_eq!(starter.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Started { pid: pid.as_raw() }));
            // The held process, started, is named in the running state.
            let state = read_state(&dir);
            assert_eq!(
                (state["status"].as_str(), &state["command"]),
                (Some("running"), &serde_json::json!(["true"]))
            );
            // A second start is refused, and runs nothing.
            let again = client(&control);
            again.send(&ControlRequest::Start).unwrap();
            match again.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Failed(r)) => assert_eq!((r.step, r.errno), (Step::Start, libc::EBUSY)),
                other => panic!("expected a refusal, got {other:?}"),
            }
            assert!(child.recv_fds_nonblocking::<ToChild>().is_err());
            kill(pid, libc::SIGKILL);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_start_whose_process_never_starts_hears_how_the_container_ended() {
        let dir = std::env::temp_dir().join(format!("tsbox-monitor-test-nostart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let control = dir.join("control.sock");
        let mut p = plan();
        p.control = Some(control.to_str().unwrap().into());
        run_monitor(p, Some(Pending::Hold(Box::new(process()))), StandIn::Sleep, |node, child, pid| {
            child.send(&ChildMsg::Ready { namespaces: Vec::new() }).unwrap();
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Ready));
            let starter = client(&control);
            starter.send(&ControlRequest::Start).unwrap();
            let _ = child.recv::<ToChild>();
            let r = Report::new(Step::User, libc::ENOENT).path("nobody2");
            child.send(&ChildMsg::Failed(r.clone())).unwrap();
            kill(pid, libc::SIGKILL);
            assert_eq!(starter.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Failed(r)));
            drop(node);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_control_socket_that_cannot_be_served_is_a_failed_start_and_kills_pid1() {
        let mut p = plan();
        p.control = Some("/nonexistent/tsbox-monitor-test/control.sock".into());
        let outcome = monitor(p, true, |node, _child, _pid| match node.recv::<HelperMsg>().unwrap() {
            Some(HelperMsg::Failed(r)) => {
                assert_eq!((r.step, r.errno), (Step::Start, libc::ENOENT));
                assert_eq!(r.path.as_deref(), Some("/nonexistent/tsbox-monitor-test/control.sock"));
            }
            other => panic!("expected a failure, got {other:?}"),
        });
        // PID 1 was killed and reaped (the monitor helper checks the reaping).
        assert_eq!(outcome.status, 125);
    }

    #[test]
    fn an_attached_containers_end_is_in_its_state_before_a_waiter_hears_of_it() {
        // Without a waiter its caller removes the state at once: no write then.
        let (dir, control) = state_dir("attached", "y");
        let mut p = plan();
        p.control = Some(control.to_str().unwrap().into());
        let state = || read_state(&dir);
        monitor(p, true, |node, child, pid| {
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            assert_eq!(
                state()["command"],
                serde_json::json!(["true"]),
                "the running state names its command"
            );
            let waiter = client(&control);
            waiter.send(&ControlRequest::Wait).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            kill(pid, libc::SIGKILL);
            assert!(matches!(waiter.recv::<HelperMsg>(), Ok(Some(HelperMsg::Exited { .. }))));
            assert_eq!(state()["status"], "stopped", "a waiter told of the end reads it in the state");
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Exited { .. }))));
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_process_that_comes_after_ready_is_named_in_the_running_state() {
        // A pooled sandbox: its state has no command until its process runs.
        let (dir, control) = state_dir("pooled", "p");
        let mut p = plan();
        p.control = Some(control.to_str().unwrap().into());
        let state = || read_state(&dir);
        run_monitor(p, None, StandIn::Sleep, |node, child, pid| {
            child.send(&ChildMsg::Ready { namespaces: Vec::new() }).unwrap();
            assert_eq!(node.recv::<HelperMsg>().unwrap(), Some(HelperMsg::Ready));
            assert!(state().get("command").is_none());
            let mut call = process();
            call.argv = vec!["sleep".into(), "30".into()];
            node.send(&NodeMsg::Process(Box::new(call))).unwrap();
            assert!(matches!(child.recv::<ToChild>(), Ok(Some(ToChild::Process(p))) if p.argv == ["sleep", "30"]));
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            assert_eq!(state()["command"], serde_json::json!(["sleep", "30"]));
            assert_eq!(state()["status"], "running");
            kill(pid, libc::SIGKILL);
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Exited { .. }))));
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_guards_closed_connection_kills_the_container() {
        let (dir, control) = state_dir("guarded", "g");
        let mut p = plan();
        p.detach = true;
        p.control = Some(control.to_str().unwrap().into());
        let outcome = monitor(p, true, |node, child, pid| {
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            drop(node);
            let waiter = client(&control);
            waiter.send(&ControlRequest::Wait).unwrap();
            let guard = client(&control);
            guard.send(&ControlRequest::Guard).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                std::fs::metadata(format!("/proc/{pid}")).is_ok(),
                "held while the guard's connection is open"
            );
            // The guard goes (its process killed, say): so does the container.
            drop(guard);
            match waiter.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { signal, .. }) => assert_eq!(signal, Some(libc::SIGKILL)),
                other => panic!("expected exited, got {other:?}"),
            }
            drop(child);
        });
        assert_eq!(outcome.status, 128 + libc::SIGKILL);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_detached_container_outlives_its_caller_and_its_end_reaches_a_waiter_and_the_state() {
        let (dir, control) = state_dir("detached", "x");
        let mut p = plan();
        p.detach = true;
        p.control = Some(control.to_str().unwrap().into());
        let outcome = monitor(p, true, |node, child, pid| {
            child.send(&ChildMsg::Started).unwrap();
            assert!(matches!(node.recv::<HelperMsg>(), Ok(Some(HelperMsg::Started { .. }))));
            let state = read_state(&dir);
            assert_eq!(
                (state["status"].as_str(), state["pid"].as_i64()),
                (Some("running"), Some(pid.as_raw() as i64))
            );
            drop(node);
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                std::fs::metadata(format!("/proc/{pid}")).is_ok(),
                "the caller left; the container stays"
            );
            // Another process waits for it through the control socket.
            let waiter = client(&control);
            waiter.send(&ControlRequest::Wait).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            kill(pid, libc::SIGKILL);
            match waiter.recv::<HelperMsg>().unwrap() {
                Some(HelperMsg::Exited { signal, .. }) => assert_eq!(signal, Some(libc::SIGKILL)),
                other => panic!("expected exited, got {other:?}"),
            }
            drop(child);
        });
        assert_eq!(outcome.status, 128 + libc::SIGKILL);
        let state = read_state(&dir);
        assert_eq!(state["status"], "stopped");
        assert_eq!(state["exitCode"], 137);
        assert_eq!(state["exitSignal"], 9);
        assert_eq!(state["id"], "x", "the monitor keeps what Node wrote");
        assert!(!control.exists(), "the control socket goes with the container");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn idmapped_sources_are_the_rootfs_then_an_images_lower_layers_then_binds() {
    use tsbox_core::{Mount, MountKind};
    let mut p = plan();
    p.rootfs = RootfsSpec::Path {
        path: "/store/top".into(),
        mode: RootMode::Overlay,
        idmap: true,
        nodev: false,
        layers: vec!["/store/middle".into(), "/store/bottom".into()],
    };
    p.mounts = vec![Mount {
        target: "/data".into(),
        kind: MountKind::Bind {
            source: "/host/data".into(),
            idmap: true,
            recursive: false,
            dev_if_device: false,
        },
        readonly: false,
        nosuid: false,
        nodev: false,
        noexec: false,
        optional: false,
        flags: 0,
        propagation: None,
    }];
    let order: Vec<(&str, bool)> = super::idmap::sources(&p).into_iter().map(|(_, path, rec)| (path, rec)).collect();
    // The child takes the trees in this order: root, each layer (not recursive), then the binds.
    assert_eq!(
        order,
        [
            ("/store/top", true),
            ("/store/middle", false),
            ("/store/bottom", false),
            ("/host/data", false)
        ]
    );
    // Without idmap (a rootless caller), none.
    let RootfsSpec::Path { idmap, .. } = &mut p.rootfs;
    *idmap = false;
    assert_eq!(super::idmap::sources(&p).len(), 1);
}
