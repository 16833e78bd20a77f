//! Pure A/B decisions on bare attribute values: GRUB `gptprio.next` boot
//! selection, `cgpt prioritize`, and the lifecycle steps (install-ready,
//! mark-good, mark-bad). Nothing here touches a disk; `disk.rs` reads the
//! attributes, calls these and writes the result.
//!
//! All functions take the USR slots **in GPT entry order**: selection breaks
//! priority ties by the lowest entry index, exactly like `gptprio.next`.

use super::attrs::{SlotAttrs, FIELD_MAX};
use crate::slot::SlotId;

/// The slot `gptprio.next` would boot: among bootable slots (priority > 0 and
/// tries > 0 or successful) the highest priority; ties go to the first entry.
/// Returns its position in `slots`, or `None` when nothing is bootable.
pub fn select(slots: &[SlotAttrs]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, slot) in slots.iter().enumerate() {
        if !slot.is_bootable() {
            continue;
        }
        // Strictly greater: an equal priority later in the table never wins.
        if best.is_none_or(|b| slot.priority > slots[b].priority) {
            best = Some(i);
        }
    }
    best
}

/// One bootloader step (`gptprio.next`): select a slot and, if it still has
/// tries, use one up. Returns the chosen position; `slots` is unchanged when
/// nothing is bootable.
pub fn boot(slots: &mut [SlotAttrs]) -> Option<usize> {
    let chosen = select(slots)?;
    // A successful slot with tries 0 boots forever without a write.
    if slots[chosen].tries > 0 {
        slots[chosen].tries -= 1;
    }
    Some(chosen)
}

/// `cgpt prioritize -i chosen`: give `chosen` the highest priority and keep
/// the others' relative order below it.
///
/// Same algorithm as cgpt: the other slots are grouped by priority, the
/// chosen one forms a group above all of them, groups with priority 0 are
/// left alone (cgpt never raises or lowers a 0), and the remaining groups
/// get `n, n-1, ..., 1` where `n` is the number of groups (at most 15; the
/// lowest groups share priority 1 if there are more than 15). For two slots
/// this means: chosen = 2 and other = 1, or chosen = 1 when the other is 0.
/// Tries and successful are not touched.
///
/// Panics if `chosen` is not a position in `slots` (a programming error).
pub fn prioritize(slots: &mut [SlotAttrs], chosen: usize) {
    assert!(
        chosen < slots.len(),
        "prioritize: no slot at position {chosen}"
    );
    // Distinct non-zero priorities of the other slots, highest first.
    let mut levels: Vec<u8> = slots
        .iter()
        .enumerate()
        .filter(|&(i, s)| i != chosen && s.priority > 0)
        .map(|(_, s)| s.priority)
        .collect();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();
    let groups = levels.len() + 1;
    let top = groups.min(usize::from(FIELD_MAX)) as u8;
    // Rank 0 is the chosen slot's own group; rank r gets max(top - r, 1).
    let new_priority = |rank: usize| top.saturating_sub(rank as u8).max(1);
    for (i, slot) in slots.iter_mut().enumerate() {
        if i == chosen {
            slot.priority = top;
        } else if slot.priority > 0 {
            let rank = 1 + levels
                .iter()
                .position(|&p| p == slot.priority)
                .expect("every non-zero priority has a level");
            slot.priority = new_priority(rank);
        }
    }
}

/// A freshly written slot becomes the one to try next: successful = 0,
/// tries = 1, prioritized above the other (update_engine's "flip").
pub fn install_ready(slots: &mut [SlotAttrs], chosen: usize) {
    slots[chosen].successful = false;
    slots[chosen].tries = 1;
    prioritize(slots, chosen);
}

/// The booted slot passed its health checks: successful = 1, tries = 0,
/// prioritized (what `cgpt add -S1 -T0` + `cgpt prioritize` do on Flatcar).
pub fn mark_good(slots: &mut [SlotAttrs], chosen: usize) {
    slots[chosen].successful = true;
    slots[chosen].tries = 0;
    prioritize(slots, chosen);
}

/// The slot failed (e.g. after a rollback): priority 0, so it never boots
/// again until something is installed into it. Tries and successful are kept
/// for diagnosis.
pub fn mark_bad(slots: &mut [SlotAttrs], chosen: usize) {
    slots[chosen].priority = 0;
}

/// A human sentence saying which slot boots next and why, e.g.
/// `B: highest priority 2 with 1 try left; A has priority 1`.
/// `slots` are the USR slots in GPT entry order.
pub fn explain(slots: &[(SlotId, SlotAttrs)]) -> String {
    let attrs: Vec<SlotAttrs> = slots.iter().map(|(_, a)| *a).collect();
    let Some(chosen) = select(&attrs) else {
        let why: Vec<String> = slots
            .iter()
            .map(|(id, a)| format!("{id} {}", not_bootable_reason(*a)))
            .collect();
        return format!("no slot is bootable: {}", why.join("; "));
    };
    let (id, a) = slots[chosen];
    let mut text = format!("{id}: ");
    let rivals: Vec<&(SlotId, SlotAttrs)> = slots
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != chosen)
        .map(|(_, s)| s)
        .collect();
    let tie = rivals
        .iter()
        .find(|(_, r)| r.is_bootable() && r.priority == a.priority);
    match tie {
        Some((rival, _)) => text.push_str(&format!(
            "priority {}{} ties with {rival}; {id} wins as the lower partition number",
            a.priority,
            state(a)
        )),
        None => text.push_str(&format!("highest priority {}{}", a.priority, state(a))),
    }
    for (rival, r) in rivals {
        if r.is_bootable() {
            if r.priority != a.priority {
                text.push_str(&format!("; {rival} has priority {}", r.priority));
            }
        } else {
            text.push_str(&format!(
                "; {rival} is not bootable ({})",
                not_bootable_reason(*r)
            ));
        }
    }
    text
}

/// Why `gptprio.next` would skip a slot with these attributes.
fn not_bootable_reason(a: SlotAttrs) -> String {
    if a.priority == 0 {
        "has priority 0".to_string()
    } else {
        format!(
            "has priority {} but no tries left and is not marked successful",
            a.priority
        )
    }
}

/// "with 1 try left" / "marked successful" for a bootable slot.
fn state(a: SlotAttrs) -> String {
    if a.successful {
        ", marked successful".to_string()
    } else if a.tries == 1 {
        " with 1 try left".to_string()
    } else {
        format!(" with {} tries left", a.tries)
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
