//! Capabilities, set as the last step before no_new_privs and seccomp: the
//! five sets of the OCI runtime-spec. tsbox's own default (Docker's) keeps
//! its list in the bounding, permitted and effective sets and leaves the
//! inheritable and ambient ones empty (as Docker since CVE-2022-24769);
//! execve then gives a root command the bounding set and a non-root one
//! only its ambient set.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use tsbox_core::{Capabilities, Report, Step};

/// The five sets, parsed: every name must be a capability, and those this
/// kernel does not know are left out (as runc does), by the caller.
pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl Sets {
    pub fn parse(c: &Capabilities) -> Result<Sets, Report> {
        Ok(Sets {
            bounding: parse(&c.bounding)?,
            effective: parse(&c.effective)?,
            permitted: parse(&c.permitted)?,
            inheritable: parse(&c.inheritable)?,
            ambient: parse(&c.ambient)?,
        })
    }
}

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

/// Drops everything but `keep` from the bounding set and returns the
/// capabilities this kernel knows (those PR_CAPBSET_READ does not refuse),
/// for [`apply`]. Runs while still root in the container, since it needs
/// CAP_SETPCAP in the effective set. One PR_CAPBSET_READ per capability the
/// kernel knows, one PR_CAPBSET_DROP per capability to drop, nothing else.
pub fn drop_bounding(keep: &CapsHashSet) -> Result<CapsHashSet, Report> {
    let mut known = CapsHashSet::new();
    for cap in caps::all() {
        let bit = libc::c_ulong::from(cap.index());
        // SAFETY: prctl with integer arguments only.
        let held = unsafe { libc::prctl(libc::PR_CAPBSET_READ, bit, 0, 0, 0) };
        // -1 (EINVAL): a capability this kernel does not know.
        if held < 0 {
            continue;
        }
        known.insert(cap);
        // SAFETY: as above.
        if held == 1 && !keep.contains(&cap) && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, bit, 0, 0, 0) } != 0 {
            return Err(Report::new(Step::Capabilities, errno())
                .path(cap.to_string())
                .detail("drop from the bounding set"));
        }
    }
    Ok(known)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EPERM)
}

/// Sets the effective, permitted, inheritable and ambient sets to `sets`,
/// each without what this kernel does not know (`known`). Runs after the
/// uid change (with keepcaps), as the last step before no_new_privs and
/// seccomp.
pub fn apply(sets: &Sets, known: &CapsHashSet) -> Result<(), Report> {
    let only = |s: &CapsHashSet| -> CapsHashSet { s.intersection(known).copied().collect() };
    caps::clear(None, CapSet::Ambient).map_err(fail("clear the ambient set"))?;
    caps::set(None, CapSet::Inheritable, &only(&sets.inheritable)).map_err(fail("set the inheritable set"))?;
    caps::set(None, CapSet::Effective, &only(&sets.effective)).map_err(fail("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &only(&sets.permitted)).map_err(fail("set the permitted set"))?;
    for cap in only(&sets.ambient) {
        caps::raise(None, CapSet::Ambient, cap).map_err(|e| {
            Report::new(Step::Capabilities, errno())
                .path(cap.to_string())
                .detail(format!("raise in the ambient set: {e}"))
                .hint("an ambient capability must be in the permitted and inheritable sets too")
        })?;
    }
    Ok(())
}
