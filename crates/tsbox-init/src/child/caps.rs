//! Capabilities, dropped as the last step before no_new_privs and seccomp.
//! OCI semantics: the bounding, permitted and effective sets hold the kept
//! capabilities, the inheritable and ambient sets are empty (as Docker since
//! CVE-2022-24769), and execve then gives a root command the bounding set and a
//! non-root one nothing.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use tsbox_core::{Report, Step};

pub fn parse(names: &[String]) -> Result<CapsHashSet, Report> {
    names
        .iter()
        .map(|n| {
            Capability::from_str(n).map_err(|_| {
                Report::new(Step::Capabilities, libc::EINVAL)
                    .path(n.clone())
                    .detail("unknown capability name")
            })
        })
        .collect()
}

fn fail(what: &'static str) -> impl Fn(caps::errors::CapsError) -> Report {
    move |e| Report::new(Step::Capabilities, errno()).detail(format!("{what}: {e}"))
}

/// Drops everything but `keep` from the bounding set and returns what it then
/// holds. Runs while still root in the container, since it needs CAP_SETPCAP
/// in the effective set. One PR_CAPBSET_READ per capability the kernel
/// knows, one PR_CAPBSET_DROP per capability to drop, nothing else.
pub fn drop_bounding(keep: &CapsHashSet) -> Result<CapsHashSet, Report> {
    let mut left = CapsHashSet::new();
    for cap in caps::all() {
        let bit = libc::c_ulong::from(cap.index());
        // SAFETY: prctl with integer arguments only.
        match unsafe { libc::prctl(libc::PR_CAPBSET_READ, bit, 0, 0, 0) } {
            1 if keep.contains(&cap) => {
                left.insert(cap);
            }
            // SAFETY: as above.
            1 if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, bit, 0, 0, 0) } != 0 => {
                return Err(Report::new(Step::Capabilities, errno())
                    .path(cap.to_string())
                    .detail("drop from the bounding set"));
            }
            // 0: not in the set; -1 (EINVAL): a capability this kernel does not know.
            _ => {}
        }
    }
    Ok(left)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EPERM)
}

/// Sets the permitted and effective sets to `keep` within `bounding` (what
/// drop_bounding left) and empties the inheritable and ambient ones. Runs
/// after the uid change (with keepcaps), as the last step before
/// no_new_privs and seccomp.
pub fn apply(keep: &CapsHashSet, bounding: &CapsHashSet) -> Result<(), Report> {
    let keep: CapsHashSet = keep.intersection(bounding).copied().collect();
    caps::clear(None, CapSet::Ambient).map_err(fail("clear the ambient set"))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(fail("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(fail("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(fail("set the permitted set"))?;
    Ok(())
}
