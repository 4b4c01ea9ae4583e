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
    move |e| {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EPERM);
        Report::new(Step::Capabilities, errno).detail(format!("{what}: {e}"))
    }
}

/// Drops everything but `keep` from the bounding set. Runs while still root in
/// the container, since it needs CAP_SETPCAP in the effective set.
pub fn drop_bounding(keep: &CapsHashSet) -> Result<(), Report> {
    let bounding = caps::read(None, CapSet::Bounding).map_err(fail("read the bounding set"))?;
    for cap in bounding.difference(keep) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(fail("drop from the bounding set"))?;
    }
    Ok(())
}

/// Sets the permitted and effective sets to `keep` (within the bounding set)
/// and empties the inheritable and ambient ones. Runs after the uid change
/// (with keepcaps), as the last step before no_new_privs and seccomp.
pub fn apply(keep: &CapsHashSet) -> Result<(), Report> {
    let bounding = caps::read(None, CapSet::Bounding).map_err(fail("read the bounding set"))?;
    let keep: CapsHashSet = keep.intersection(&bounding).copied().collect();
    caps::clear(None, CapSet::Ambient).map_err(fail("clear the ambient set"))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(fail("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(fail("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(fail("set the permitted set"))?;
    Ok(())
}
