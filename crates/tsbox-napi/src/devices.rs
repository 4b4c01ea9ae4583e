//! The device rules of a container on cgroup v2: tsbox_core's program for
//! them, loaded with bpf(2) and attached to the container's cgroup before any
//! process is in it. cgroup v2 has no device controller; a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to a cgroup decides every
//! open and mknod of a device node by the processes in it and below it.
//!
//! Attached with `BPF_F_ALLOW_MULTI`: a program attached below (in a cgroup
//! the container makes) runs as well as this one, never instead of it, and
//! a device is allowed only when every program allows it. The program
//! holds no descriptor of ours once attached; it goes when the cgroup is
//! removed. A program already attached to the cgroup itself (a joined
//! cgroupsPath that held another container) is replaced, after the new one
//! is in place, as `deny a` resets a v1 device cgroup (runc does the same).
//! A joined cgroup is kept when the container goes, so its teardown detaches
//! the program ([`detach_device_filter`]); and when replacing the old ones
//! fails, the new one is detached before the error is reported.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use napi_derive::napi;
use nix::errno::Errno;
use tsbox_core::devices::{program, Policy, Rule};

// <linux/bpf.h>
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The part of `union bpf_attr` BPF_PROG_LOAD reads (the kernel takes a
/// shorter attr than its own and reads the rest as zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info`, up to its name (Linux 4.15), which
/// is all tsbox reads; the kernel fills what the length given covers.
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// The name tsbox loads its device programs with; the teardown of a kept
/// cgroup detaches the programs that have it.
const PROG_NAME: &[u8] = b"tsbox_device";

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    loop {
        // SAFETY: `attr` is a #[repr(C)] prefix of union bpf_attr for `cmd`,
        // alive and writable for the call; its pointers point at buffers the
        // caller keeps alive.
        let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
        if r >= 0 {
            return Ok(r);
        }
        match Errno::last() {
            Errno::EINTR | Errno::EAGAIN => continue,
            e => return Err(e),
        }
    }
}

/// One write of the rules, as ts/cgroups's DeviceRuleWrite: `devices.allow`
/// or `devices.deny`, and `a` or `c 1:3 rwm`.
#[napi(object)]
pub struct DeviceRuleWrite {
    pub file: String,
    pub value: String,
}

/// Why the filter could not be put in place: the call that failed, its
/// errno (0 for rules that cannot be carried out: no call failed), and what
/// happened (the verifier's log, when it refused the program).
#[napi(object)]
#[derive(Debug)]
pub struct DeviceFilterFailure {
    pub call: String,
    pub errno: i32,
    pub detail: String,
}

fn failure(call: &str, errno: Errno, detail: impl Into<String>) -> DeviceFilterFailure {
    DeviceFilterFailure {
        call: call.into(),
        errno: errno as i32,
        detail: detail.into(),
    }
}

fn bad_rules(detail: String) -> DeviceFilterFailure {
    DeviceFilterFailure {
        call: "device rules".into(),
        errno: 0,
        detail,
    }
}

/// Builds the device program for `rules` (the v1 device cgroup's writes, in
/// order), loads it and attaches it to the cgroup v2 directory `cgroup`.
/// Returns null when it is in place, else what failed (nothing is left
/// attached then: the caller removes the cgroup).
#[napi]
pub fn attach_device_filter(cgroup: String, rules: Vec<DeviceRuleWrite>) -> Option<DeviceFilterFailure> {
    attach(&cgroup, &rules).err()
}

fn attach(cgroup: &str, writes: &[DeviceRuleWrite]) -> Result<(), DeviceFilterFailure> {
    let mut rules = Vec::with_capacity(writes.len());
    for w in writes {
        rules.push(Rule::parse(&w.file, &w.value).map_err(bad_rules)?);
    }
    let policy = Policy::from_rules(&rules).map_err(bad_rules)?;
    let insns: Vec<u8> = program(&policy).into_iter().flat_map(|i| i.to_bytes()).collect();

    let dir = open_dir(cgroup)?;
    let before = attached(&dir)?;
    let prog = load(&insns)?;
    let mut attr = AttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| failure("BPF_PROG_ATTACH", e, "attach the device program to the container's cgroup"))?;
    // Ours is in place: the old ones go. If one cannot, ours goes too, so
    // that nothing of this launch is left on a cgroup that may be kept.
    replace(&dir, &before).map_err(|mut f| {
        if let Err(e) = detach(&dir, &prog) {
            f.detail = format!("{}; and detaching the new device program again failed too ({e})", f.detail);
        }
        f
    })
}

/// Detaches every program but the new one (`before`: those attached before it).
fn replace(dir: &OwnedFd, before: &[u32]) -> Result<(), DeviceFilterFailure> {
    #[cfg(test)]
    if let Some(f) = tests::REPLACE_FAILS.with(|x| x.take()) {
        return Err(f);
    }
    for &id in before {
        let Some(old) = open_prog(id).map_err(|e| {
            failure(
                "BPF_PROG_GET_FD_BY_ID",
                e,
                format!("open device program {id}, attached to the cgroup before, to replace it"),
            )
        })?
        else {
            continue;
        };
        detach(dir, &old).map_err(|e| {
            failure(
                "BPF_PROG_DETACH",
                e,
                format!("detach device program {id}, attached to the cgroup before"),
            )
        })?;
    }
    Ok(())
}

/// A descriptor of program `id`; None when it is gone (detached and freed meanwhile).
fn open_prog(id: u32) -> Result<Option<OwnedFd>, Errno> {
    let mut get = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
        // SAFETY: a new descriptor of the program, ours.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// BPF_PROG_DETACH of `prog` from the cgroup; a program not attached (ENOENT) is fine.
fn detach(dir: &OwnedFd, prog: &OwnedFd) -> Result<(), Errno> {
    let mut attr = AttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    match bpf(BPF_PROG_DETACH, &mut attr) {
        Ok(_) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The program's name, as loaded.
fn prog_name(prog: &OwnedFd) -> Result<Vec<u8>, Errno> {
    let mut info = ProgInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let len = info.name.iter().position(|&b| b == 0).unwrap_or(info.name.len());
    Ok(info.name[..len].to_vec())
}

/// Detaches tsbox's device programs (by their name) from the cgroup v2
/// directory `cgroup`, which stays: the teardown of a joined cgroupsPath.
/// Other programs on it are left. A cgroup that is gone has none. Returns
/// null when none is left, else what failed.
#[napi]
pub fn detach_device_filter(cgroup: String) -> Option<DeviceFilterFailure> {
    detach_own(&cgroup).err()
}

fn detach_own(cgroup: &str) -> Result<(), DeviceFilterFailure> {
    let dir = match open_dir(cgroup) {
        Ok(dir) => dir,
        Err(f) if f.errno == Errno::ENOENT as i32 => return Ok(()),
        Err(f) => return Err(f),
    };
    for id in attached(&dir)? {
        let Some(prog) = open_prog(id).map_err(|e| {
            failure(
                "BPF_PROG_GET_FD_BY_ID",
                e,
                format!("open device program {id}, attached to the cgroup"),
            )
        })?
        else {
            continue;
        };
        if prog_name(&prog).map_err(|e| failure("BPF_OBJ_GET_INFO_BY_FD", e, format!("read the name of device program {id}")))? != PROG_NAME
        {
            continue;
        }
        detach(&dir, &prog).map_err(|e| {
            failure(
                "BPF_PROG_DETACH",
                e,
                format!("detach tsbox's device program {id} from the kept cgroup"),
            )
        })?;
    }
    Ok(())
}

fn open_dir(cgroup: &str) -> Result<OwnedFd, DeviceFilterFailure> {
    let path = CString::new(cgroup).map_err(|_| failure("open", Errno::EINVAL, "the cgroup path has a NUL byte"))?;
    // SAFETY: a NUL-terminated path; the descriptor is ours on success.
    let dir = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if dir < 0 {
        return Err(failure("open", Errno::last(), "open the container's cgroup"));
    }
    // SAFETY: just opened, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(dir) })
}

/// The ids of the device programs attached to the cgroup itself (not those
/// it inherits from its ancestors).
fn attached(dir: &OwnedFd) -> Result<Vec<u32>, DeviceFilterFailure> {
    let mut ids = vec![0u32; 64];
    for _ in 0..4 {
        let mut q = QueryAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut q) {
            Ok(_) => {
                ids.truncate(q.prog_cnt as usize);
                return Ok(ids);
            }
            // More than there was room for: the count is the number there are.
            Err(Errno::ENOSPC) => ids = vec![0u32; q.prog_cnt as usize + 8],
            Err(e) => {
                return Err(failure(
                    "BPF_PROG_QUERY",
                    e,
                    "list the device programs attached to the container's cgroup",
                ))
            }
        }
    }
    Err(failure(
        "BPF_PROG_QUERY",
        Errno::ENOSPC,
        "the device programs attached to the container's cgroup kept changing",
    ))
}

/// BPF_PROG_LOAD; when the kernel refuses the program, again with a log
/// buffer, for the verifier's reasons.
fn load(insns: &[u8]) -> Result<OwnedFd, DeviceFilterFailure> {
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let attr = |log: &mut [u8], level: u32| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: level,
        log_size: if level == 0 { 0 } else { log.len() as u32 },
        log_buf: if level == 0 { 0 } else { log.as_mut_ptr() as u64 },
        prog_name: name,
        ..Default::default()
    };
    let mut none = [];
    let err = match bpf(BPF_PROG_LOAD, &mut attr(&mut none, 0)) {
        // SAFETY: a new program descriptor, ours.
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 16];
    let again = bpf(BPF_PROG_LOAD, &mut attr(&mut log, 1));
    let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(log.len())])
        .trim()
        .to_string();
    if let Ok(fd) = again {
        // SAFETY: as above; it loaded the second time (a transient failure).
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    let detail = if text.is_empty() {
        "load the device program".to_string()
    } else {
        format!("load the device program; the verifier's log: {text}")
    };
    Err(failure("BPF_PROG_LOAD", err, detail))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Makes the next replace() fail as this, after the new program is attached.
        pub(crate) static REPLACE_FAILS: Cell<Option<DeviceFilterFailure>> = const { Cell::new(None) };
    }

    fn rules() -> Vec<DeviceRuleWrite> {
        [("devices.deny", "a"), ("devices.allow", "c 1:3 rwm")]
            .iter()
            .map(|(f, v)| DeviceRuleWrite {
                file: f.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    /// A cgroup of its own on this host's cgroup2 mount, removed when dropped.
    struct Scratch(String);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            // SAFETY: geteuid cannot fail.
            assert_eq!(
                unsafe { libc::geteuid() },
                0,
                "this test attaches device programs to a cgroup: it needs root (CI runs cargo test as root)"
            );
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let mount = mountinfo
                .lines()
                .find_map(|l| {
                    let (left, right) = l.split_once(" - ")?;
                    right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).unwrap().to_string())
                })
                .expect("this test needs a cgroup2 mount (pure v2, or hybrid's /sys/fs/cgroup/unified)");
            let dir = format!("{mount}/tsbox-cargo-{name}-{}", std::process::id());
            std::fs::create_dir(&dir).unwrap();
            Scratch(dir)
        }

        fn programs(&self) -> Vec<u32> {
            attached(&open_dir(&self.0).unwrap()).unwrap_or_else(|f| panic!("{}: {}", f.call, f.detail))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = detach_own(&self.0);
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    #[test]
    fn a_failure_after_the_attach_leaves_no_program_attached() {
        let cg = Scratch::new("replace-fails");
        REPLACE_FAILS.with(|x| x.set(Some(failure("BPF_PROG_DETACH", Errno::EPERM, "injected"))));
        let f = attach(&cg.0, &rules()).expect_err("the injected failure");
        assert_eq!(
            (f.call.as_str(), f.errno, f.detail.as_str()),
            ("BPF_PROG_DETACH", Errno::EPERM as i32, "injected")
        );
        assert_eq!(cg.programs(), Vec::<u32>::new());
    }

    #[test]
    fn a_second_attach_replaces_the_first_and_the_teardown_of_a_kept_cgroup_detaches_it() {
        let cg = Scratch::new("kept");
        attach(&cg.0, &rules()).unwrap_or_else(|f| panic!("{}: {}", f.call, f.detail));
        let first = cg.programs();
        assert_eq!(first.len(), 1);
        attach(&cg.0, &rules()).unwrap_or_else(|f| panic!("{}: {}", f.call, f.detail));
        let second = cg.programs();
        assert_eq!(second.len(), 1);
        assert_ne!(first, second);
        detach_own(&cg.0).unwrap_or_else(|f| panic!("{}: {}", f.call, f.detail));
        assert_eq!(cg.programs(), Vec::<u32>::new());
        // A cgroup that is gone has nothing to detach.
        assert!(detach_own(&format!("{}-gone", cg.0)).is_ok());
    }
}
