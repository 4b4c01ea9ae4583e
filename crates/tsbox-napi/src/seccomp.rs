//! Seccomp profiles compiled to BPF here, in the parent, once per distinct
//! profile (DESIGN.md, Performance principles): the container process only
//! loads the program.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tsbox_core::seccomp::{self, Arch, Profile};

/// Programs already compiled, keyed by the profile text (`None`: the default).
/// The map hashes the text and compares it whole, so two profiles can never
/// share a program. Profiles are few; the bound only stops a caller that
/// generates them from growing this without end.
static CACHE: OnceLock<Mutex<Programs>> = OnceLock::new();
type Programs = HashMap<Option<String>, Arc<[u8]>>;
const CACHE_ENTRIES: usize = 64;

fn compile(profile_json: Option<&str>) -> std::result::Result<Arc<[u8]>, String> {
    let arch = Arch::host().map_err(|e| e.to_string())?;
    let profile = match profile_json {
        None => seccomp::default_profile(),
        Some(text) => Profile::from_json(text).map_err(|e| e.to_string())?,
    };
    let bpf = seccomp::compile(&profile, arch).map_err(|e| e.to_string())?;
    Ok(Arc::from(bpf.into_bytes()))
}

/// Compiles an OCI `linux.seccomp` profile (JSON text; null for tsbox's
/// default profile) for this machine's architecture, and returns the BPF
/// program as raw `struct sock_filter` bytes. A bad profile throws an error
/// naming the JSON path of each problem.
#[napi]
pub fn compile_seccomp(profile_json: Option<String>) -> Result<Buffer> {
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap().get(&profile_json) {
        return Ok(Buffer::from(hit.to_vec()));
    }
    // Compiled outside the lock: a slow profile does not hold up the others.
    let bpf = compile(profile_json.as_deref()).map_err(|msg| Error::new(Status::InvalidArg, format!("seccomp profile: {msg}")))?;
    let mut map = cache.lock().unwrap();
    if map.len() >= CACHE_ENTRIES {
        map.clear();
    }
    map.insert(profile_json, bpf.clone());
    Ok(Buffer::from(bpf.to_vec()))
}

/// An OCI bundle's profile taken as runc takes it (tsbox_core's
/// `seccomp::relax`): names of no system call left out, and one action per
/// call, the one the kernel ranks first. Returns the profile's JSON.
#[napi]
pub fn seccomp_relax(profile_json: String) -> Result<String> {
    seccomp::relax(&profile_json)
        .map(|(text, _notes)| text)
        .map_err(|msg| Error::new(Status::InvalidArg, format!("seccomp profile: not valid JSON: {msg}")))
}

/// tsbox's default profile as OCI JSON, for users to dump, edit and pass back
/// with `--security-opt seccomp=PATH`.
#[napi]
pub fn seccomp_default_profile() -> String {
    seccomp::default_profile_json()
}

/// One problem of a seccomp profile: the JSON path of the value at fault
/// (`syscalls[3].names[1]`, `(profile)` for the whole) and what is wrong.
#[napi(object)]
pub struct SeccompProblem {
    pub path: String,
    pub message: String,
}

/// Every problem of an OCI `linux.seccomp` profile (JSON text) for this
/// machine, from the one validator (tsbox_core::seccomp::problems); empty
/// when `compileSeccomp` would take it.
#[napi]
pub fn seccomp_problems(profile_json: String) -> Vec<SeccompProblem> {
    let problems = match Arch::host() {
        Ok(arch) => seccomp::problems(&profile_json, arch),
        Err(e) => vec![seccomp::Problem {
            path: "(profile)".into(),
            message: e.to_string(),
        }],
    };
    problems
        .into_iter()
        .map(|p| SeccompProblem {
            path: p.path,
            message: p.message,
        })
        .collect()
}
