//! Profile → BPF: a binary search on the system call number, with the calls
//! whose verdict depends on their arguments sent to blocks of their own.
//!
//! The program, top to bottom:
//!
//! ```text
//! prologue   ld [arch]; jeq AUDIT_ARCH_<arch>, 1, 0; ret KILL_PROCESS
//!            ld [nr]
//! x32 guard  (x86_64 only) jge 0x40000000, 0, 2; jeq 0xffffffff, 1, 0;
//!            ret KILL_PROCESS
//! tree       jge on the sorted boundaries of the number ranges; each leaf is
//!            `ret ACTION` for a range whose calls take one action whatever
//!            their arguments, or `ja BLOCK` for a call with conditional rules
//! blocks     per call with conditional rules: each rule in evaluation order,
//!            its conditions ANDed, `ret ACTION` when they all hold; at the end
//!            `ret` the call's unconditional action, or the default
//! ```
//!
//! Consecutive numbers with the same outcome (the same action, or the same
//! block) form one range, and numbers no rule names take the default, so the
//! default profile's tree has 76 leaves on x86_64 and a call whose arguments do
//! not matter runs at most 11 instructions (12 on x86_64, with the x32 guard).
//! The kernel pays for the path, not the whole program, twice: when it loads
//! the filter it emulates it for every system call number to fill its action
//! cache, and at run time every call the cache does not answer runs it. (A
//! linear chain of comparisons, as this compiler emitted before, took 1766
//! instructions and about 1 ms to load.)
//!
//! The x32 guard. On x86_64 an x32 call is its x32 number with bit 30
//! (`__X32_SYSCALL_BIT`) set, made under the same AUDIT_ARCH_X86_64, so the
//! arch check lets it through and no rule matches it. Left to the default
//! action it would bypass every rule of a deny-list (`--preset contained`, any
//! profile whose defaultAction is ALLOW): unshare(CLONE_NEWUSER) as 0x40000110,
//! ptrace as 0x40000209 (x32's own 521), keyctl, chmod with S_ISUID. libseccomp
//! treats x32 as an arch of its own, whose calls get the bad-arch action unless
//! the profile lists SCMP_ARCH_X32, and the named rules with x32's numbers when
//! it does. tsbox has no x32 table to do the latter faithfully, so x32 calls get
//! what every other foreign ABI gets, KILL_PROCESS, whatever the profile and its
//! `architectures` say. The one difference from libseccomp: under a profile
//! that lists SCMP_ARCH_X32, as Docker's and podman's defaults do, an x32
//! program is killed here where runc would run it; it would need a kernel with
//! x32 enabled, which most distributions build without or switch off.
//!
//! The guard, like libseccomp's, takes every number from 0x40000000 up (above
//! x32's calls the kernel has none), except -1: that is no call (the kernel
//! answers ENOSYS), and a tracer sets it to skip a call (SECCOMP_RET_TRACE),
//! after which the kernel runs the filter again; it falls through to the tree,
//! whose last range gives it the default action.
//!
//! Every jump is forward. jt/jf reach 255 instructions: the tree falls back to a
//! `ja` trampoline where a subtree is longer than that, leaves reach the blocks
//! with `ja` (32-bit offsets), and a jump inside a block never leaves its rule,
//! which is at most a few dozen instructions.

use std::collections::BTreeMap;

use super::profile::{Action, Arg, Op, Profile};
use super::{Arch, Bpf, Instruction, Problems, SeccompError};

// Instruction codes (<linux/bpf_common.h>): class | size or operation | source.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGT_K: u16 = 0x05 | 0x20;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

// `struct seccomp_data` offsets. Both architectures are little-endian: the low
// word of an argument comes first.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;

/// <asm/unistd.h> `__X32_SYSCALL_BIT`: an x86_64 number with it set is an x32 call.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `seccomp_data.nr` of -1: no call (a tracer's skip), as a 32-bit word.
const NO_SYSCALL: u32 = u32::MAX;

/// How far jt/jf reach.
const SHORT_JUMP: usize = u8::MAX as usize;

/// What the tree does for a range of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Return this value whatever the arguments.
    Ret(u32),
    /// Jump to this block, an index into the blocks `plan` returns.
    Block(usize),
}

/// The verdict of one call with conditional rules. Calls with the same rules
/// and the same fallback (chmod and fchmod in the default profile) share one.
#[derive(Debug, PartialEq, Eq)]
struct Block<'p> {
    /// In evaluation order: the conditions that must all hold, and the return value.
    rules: Vec<(&'p [Arg], u32)>,
    /// The call's unconditional action, or the default.
    fallback: u32,
}

/// A call's rules on the target architecture, sorted for evaluation.
#[derive(Default)]
struct Call<'p> {
    conditional: Vec<(&'p [Arg], u32)>,
    unconditional: Option<u32>,
}

/// Compiles a profile for `arch`. Names of calls that `arch` does not have are
/// skipped (nothing can make them); every other problem is an error.
pub fn compile(profile: &Profile, arch: Arch) -> Result<Bpf, Problems> {
    profile.validate()?;
    let default = ret_value(profile.default_action, profile.default_errno_ret)?;
    let calls = calls(profile, arch)?;
    let (ranges, blocks) = plan(&calls, default);
    Ok(Bpf::from_instructions(&emit(arch, &ranges, &blocks)?)?)
}

/// Each call `arch` has that a rule names, by number: its conditional rules in
/// profile order, and its unconditional action. Evaluation tries the former
/// first (module docs), whatever the order of the profile.
fn calls(profile: &Profile, arch: Arch) -> Result<BTreeMap<u32, Call<'_>>, SeccompError> {
    let mut calls: BTreeMap<u32, Call<'_>> = BTreeMap::new();
    for rule in &profile.syscalls {
        let ret = ret_value(rule.action, rule.errno_ret)?;
        for nr in rule.names.iter().filter_map(|n| arch.syscall(n)) {
            let call = calls.entry(nr).or_default();
            if !rule.args.is_empty() {
                call.conditional.push((&rule.args, ret));
            } else if call.unconditional.is_none() {
                // validate() refused a second, different one.
                call.unconditional = Some(ret);
            }
        }
    }
    Ok(calls)
}

/// Cuts the number space into ranges of one outcome: `(first number, outcome)`
/// in increasing order, the first starting at 0, each running to the next's
/// start (the last to 2^32 - 1). Also returns the blocks the outcomes name.
fn plan<'p>(calls: &BTreeMap<u32, Call<'p>>, default: u32) -> (Vec<(u32, Outcome)>, Vec<Block<'p>>) {
    let mut blocks: Vec<Block<'p>> = Vec::new();
    let mut ranges = vec![(0, Outcome::Ret(default))];
    for (&nr, call) in calls {
        let fallback = call.unconditional.unwrap_or(default);
        let mut rules = call.conditional.clone();
        // A rule at the end that returns what the fallback returns changes
        // nothing, and without it the call may need no block at all.
        while rules.last().is_some_and(|(_, ret)| *ret == fallback) {
            rules.pop();
        }
        let outcome = if rules.is_empty() {
            Outcome::Ret(fallback)
        } else {
            let block = Block { rules, fallback };
            Outcome::Block(blocks.iter().position(|b| *b == block).unwrap_or_else(|| {
                blocks.push(block);
                blocks.len() - 1
            }))
        };
        set_from(&mut ranges, nr, outcome);
        // Until the next named call (if it comes later), the default.
        if let Some(next) = nr.checked_add(1) {
            set_from(&mut ranges, next, Outcome::Ret(default));
        }
    }
    (ranges, blocks)
}

/// From `start` on (`start` at or after the last range's), `outcome`: extends
/// the last range, replaces it if it starts there, or opens a new one.
fn set_from(ranges: &mut Vec<(u32, Outcome)>, start: u32, outcome: Outcome) {
    if ranges.last().is_some_and(|(_, o)| *o == outcome) {
        return;
    }
    if ranges.last().is_some_and(|(s, _)| *s == start) {
        ranges.pop();
    }
    // The range before the replaced one may end the same way.
    if ranges.last().is_none_or(|(_, o)| *o != outcome) {
        ranges.push((start, outcome));
    }
}

fn emit(arch: Arch, ranges: &[(u32, Outcome)], blocks: &[Block<'_>]) -> Result<Vec<Instruction>, SeccompError> {
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JEQ_K, arch.audit_arch(), 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    ];
    // With one range the tree is a single `ret` and needs no number, but on
    // x86_64 the x32 guard does, even for a profile without rules: it still
    // kills x32's calls where the default would allow them.
    if ranges.len() > 1 || arch == Arch::X86_64 {
        prog.push(stmt(BPF_LD_W_ABS, DATA_NR));
    }
    if arch == Arch::X86_64 {
        // The x32 guard (module docs): bit 30 and above is killed, -1 excepted.
        prog.extend([
            jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 2),
            jump(BPF_JEQ_K, NO_SYSCALL, 1, 0),
            stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        ]);
    }
    // Leaves that jump to a block: (pc of the `ja`, block).
    let mut to_block = Vec::new();
    tree(&mut prog, ranges, &mut to_block);
    let mut starts = Vec::with_capacity(blocks.len());
    for b in blocks {
        starts.push(prog.len());
        block(&mut prog, b)?;
    }
    for (pc, b) in to_block {
        prog[pc].k = offset(pc, starts[b]);
    }
    Ok(prog)
}

/// The binary search over `ranges`, as a tree laid out depth-first: a node
/// `jge START_OF_UPPER_HALF`, the lower half right after it, then the upper half.
fn tree(prog: &mut Vec<Instruction>, ranges: &[(u32, Outcome)], to_block: &mut Vec<(usize, usize)>) {
    if let [(_, outcome)] = ranges {
        match *outcome {
            Outcome::Ret(value) => prog.push(stmt(BPF_RET_K, value)),
            Outcome::Block(b) => {
                to_block.push((prog.len(), b));
                prog.push(stmt(BPF_JMP_JA, 0));
            }
        }
        return;
    }
    let (lower, upper) = ranges.split_at(ranges.len() / 2);
    let boundary = upper[0].0;
    let skip = tree_len(lower.len());
    if skip <= SHORT_JUMP {
        prog.push(jump(BPF_JGE_K, boundary, skip as u8, 0));
    } else {
        prog.push(jump(BPF_JGE_K, boundary, 0, 1));
        prog.push(stmt(BPF_JMP_JA, skip as u32));
    }
    let start = prog.len();
    tree(prog, lower, to_block);
    debug_assert_eq!(prog.len() - start, skip);
    tree(prog, upper, to_block);
}

/// The number of instructions `tree` emits for `leaves` ranges: it depends on
/// their count only, as every leaf is one instruction and every split halves
/// the count.
fn tree_len(leaves: usize) -> usize {
    if leaves <= 1 {
        return 1;
    }
    let lower = tree_len(leaves / 2);
    let trampoline = usize::from(lower > SHORT_JUMP);
    1 + trampoline + lower + tree_len(leaves - leaves / 2)
}

/// A call's rules in order, then its fallback.
fn block(prog: &mut Vec<Instruction>, block: &Block<'_>) -> Result<(), SeccompError> {
    for (conditions, ret) in &block.rules {
        // Jumps taken when a condition fails: to the next rule, past this
        // rule's return.
        let mut fails = Vec::new();
        for c in conditions.iter() {
            condition(prog, c, &mut fails);
        }
        prog.push(stmt(BPF_RET_K, *ret));
        let next = prog.len();
        for (pc, field) in fails {
            let k = u8::try_from(next - pc - 1).map_err(|_| backend("a rule is too long for its jumps"))?;
            match field {
                Field::Jt => prog[pc].jt = k,
                Field::Jf => prog[pc].jf = k,
            }
        }
    }
    prog.push(stmt(BPF_RET_K, block.fallback));
    Ok(())
}

/// Where a conditional jump of a condition goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// Past this many instructions: to the next condition, from early in this one.
    Skip(u8),
    /// The next rule: this one does not match.
    Fail,
}

#[derive(Clone, Copy)]
enum Field {
    Jt,
    Jf,
}

/// Emits the test of one condition on the full 64-bit argument: it falls
/// through when the condition holds and jumps to the next rule (a jump recorded
/// in `fails`) when not. Comparisons are unsigned, as libseccomp's.
fn condition(prog: &mut Vec<Instruction>, arg: &Arg, fails: &mut Vec<(usize, Field)>) {
    let low = DATA_ARGS + 8 * arg.index;
    let high = low + 4;
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (vh, vl) = split(arg.value);
    let mut j = |prog: &mut Vec<Instruction>, code: u16, k: u32, jt: To, jf: To| {
        let mut target = |to: To, field: Field| match to {
            To::Next => 0,
            To::Skip(n) => n,
            To::Fail => {
                fails.push((prog.len(), field));
                0
            }
        };
        let (jt, jf) = (target(jt, Field::Jt), target(jf, Field::Jf));
        prog.push(jump(code, k, jt, jf));
    };
    let ld = |prog: &mut Vec<Instruction>, offset: u32| prog.push(stmt(BPF_LD_W_ABS, offset));
    match arg.op {
        Op::Eq => {
            ld(prog, high);
            j(prog, BPF_JEQ_K, vh, To::Next, To::Fail);
            ld(prog, low);
            j(prog, BPF_JEQ_K, vl, To::Next, To::Fail);
        }
        // Differs in either word.
        Op::Ne => {
            ld(prog, high);
            j(prog, BPF_JEQ_K, vh, To::Next, To::Skip(2));
            ld(prog, low);
            j(prog, BPF_JEQ_K, vl, To::Fail, To::Next);
        }
        // Above on the high word: holds. Equal: compare the low words. Below: fails.
        Op::Gt | Op::Ge => {
            ld(prog, high);
            j(prog, BPF_JGT_K, vh, To::Skip(3), To::Next);
            j(prog, BPF_JEQ_K, vh, To::Next, To::Fail);
            ld(prog, low);
            let code = if arg.op == Op::Gt { BPF_JGT_K } else { BPF_JGE_K };
            j(prog, code, vl, To::Next, To::Fail);
        }
        // Above on the high word: fails. Equal: compare the low words. Below: holds.
        Op::Lt | Op::Le => {
            ld(prog, high);
            j(prog, BPF_JGT_K, vh, To::Fail, To::Next);
            j(prog, BPF_JEQ_K, vh, To::Next, To::Skip(2));
            ld(prog, low);
            // Lt fails from equal up, Le from above.
            let code = if arg.op == Op::Lt { BPF_JGE_K } else { BPF_JGT_K };
            j(prog, code, vl, To::Fail, To::Next);
        }
        // `value` is the mask, `valueTwo` what the masked argument must equal.
        // A word the mask leaves out (and valueTwo with it) needs no test, as
        // the high word of the default profile's 32-bit checks.
        Op::MaskedEq => {
            let (wh, wl) = split(arg.value_two);
            for (offset, mask, want) in [(high, vh, wh), (low, vl, wl)] {
                if mask == 0 && want == 0 {
                    continue;
                }
                ld(prog, offset);
                if mask != u32::MAX {
                    prog.push(stmt(BPF_ALU_AND_K, mask));
                }
                j(prog, BPF_JEQ_K, want, To::Next, To::Fail);
            }
        }
    }
}

/// The `k` of a `ja` at `from` that lands on `to`.
fn offset(from: usize, to: usize) -> u32 {
    u32::try_from(to - from - 1).expect("a program is far shorter than 2^32 instructions")
}

fn stmt(code: u16, k: u32) -> Instruction {
    Instruction { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code, jt, jf, k }
}

/// What the filter returns for an action.
fn ret_value(action: Action, errno_ret: Option<u32>) -> Result<u32, SeccompError> {
    if action == Action::Notify {
        return Ok(SECCOMP_RET_USER_NOTIF);
    }
    action
        .resolve(errno_ret)
        .map(u32::from)
        .ok_or_else(|| backend(format!("{action:?} has no return value")))
}

/// <linux/seccomp.h>: the call waits for the agent holding the filter's listener.
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;

fn backend(e: impl std::fmt::Display) -> SeccompError {
    SeccompError::Backend(e.to_string())
}
