//! Exhaustive checks of the pure A/B decisions against small reference
//! models written independently of the implementation, over every
//! (priority 0-15, tries 0-15, successful 0/1) combination of two slots.

use super::*;

/// All 512 attribute values of one slot.
fn all_attrs() -> impl Iterator<Item = SlotAttrs> {
    (0..=15u8).flat_map(|priority| {
        (0..=15u8).flat_map(move |tries| {
            [false, true].map(|successful| SlotAttrs {
                priority,
                tries,
                successful,
            })
        })
    })
}

/// Every ordered pair of two slots (512^2).
fn all_pairs() -> impl Iterator<Item = [SlotAttrs; 2]> {
    all_attrs().flat_map(|a| all_attrs().map(move |b| [a, b]))
}

/// Reference gptprio.next for two entries, spelled out case by case.
fn reference_select(s: [SlotAttrs; 2]) -> Option<usize> {
    let ok = |a: SlotAttrs| a.priority > 0 && (a.tries > 0 || a.successful);
    match (ok(s[0]), ok(s[1])) {
        (false, false) => None,
        (true, false) => Some(0),
        (false, true) => Some(1),
        // Equal priorities: the first entry wins.
        (true, true) => Some(if s[1].priority > s[0].priority { 1 } else { 0 }),
    }
}

/// Reference `cgpt prioritize -i` for two slots: the chosen slot ends above
/// the other, the other keeps a non-zero priority (1) unless it was 0.
fn reference_prioritize(mut s: [SlotAttrs; 2], chosen: usize) -> [SlotAttrs; 2] {
    let other = 1 - chosen;
    if s[other].priority == 0 {
        s[chosen].priority = 1;
    } else {
        s[chosen].priority = 2;
        s[other].priority = 1;
    }
    s
}

#[test]
fn select_matches_reference_for_every_pair() {
    let mut count = 0;
    for pair in all_pairs() {
        assert_eq!(select(&pair), reference_select(pair), "{pair:?}");
        count += 1;
    }
    assert_eq!(count, 512 * 512);
}

#[test]
fn boot_decrements_only_the_chosen_slot_with_tries() {
    for pair in all_pairs() {
        let mut after = pair;
        let chosen = boot(&mut after);
        assert_eq!(chosen, reference_select(pair), "{pair:?}");
        let mut expected = pair;
        if let Some(i) = chosen {
            expected[i].tries = pair[i].tries.saturating_sub(1);
        }
        assert_eq!(after, expected, "{pair:?}");
    }
}

#[test]
fn prioritize_matches_reference_for_every_pair() {
    for pair in all_pairs() {
        for chosen in 0..2 {
            let mut after = pair;
            prioritize(&mut after, chosen);
            assert_eq!(
                after,
                reference_prioritize(pair, chosen),
                "{pair:?} chosen {chosen}"
            );
        }
    }
}

#[test]
fn lifecycle_steps_match_reference_for_every_pair() {
    for pair in all_pairs() {
        for chosen in 0..2 {
            let mut ready = pair;
            install_ready(&mut ready, chosen);
            let mut expected = pair;
            expected[chosen].successful = false;
            expected[chosen].tries = 1;
            assert_eq!(ready, reference_prioritize(expected, chosen));
            // A freshly installed slot always boots next, whatever came before...
            assert_eq!(select(&ready), Some(chosen), "{pair:?}");
            // ...exactly once: after that trial boot it is no longer bootable,
            // so an unhealthy update falls back to the other slot if it can.
            let mut booted = ready;
            assert_eq!(boot(&mut booted), Some(chosen));
            assert!(!booted[chosen].is_bootable());
            assert_eq!(select(&booted), reference_select(booted));

            let mut good = pair;
            mark_good(&mut good, chosen);
            let mut expected = pair;
            expected[chosen].successful = true;
            expected[chosen].tries = 0;
            assert_eq!(good, reference_prioritize(expected, chosen));
            assert_eq!(
                select(&good),
                Some(chosen),
                "a good slot boots forever: {pair:?}"
            );

            let mut bad = pair;
            mark_bad(&mut bad, chosen);
            let mut expected = pair;
            expected[chosen].priority = 0;
            assert_eq!(bad, expected);
            assert_ne!(select(&bad), Some(chosen));
        }
    }
}

#[test]
fn prioritize_follows_cgpt_with_more_groups() {
    // Priorities 5, 5, 3, 0 with the last-but-one chosen: groups are
    // {chosen}, {5,5}, and the 0 stays 0 -> chosen 2, the fives 1.
    let p = |priority| SlotAttrs {
        priority,
        tries: 0,
        successful: true,
    };
    let mut slots = [p(5), p(5), p(3), p(0)];
    prioritize(&mut slots, 2);
    let got: Vec<u8> = slots.iter().map(|s| s.priority).collect();
    assert_eq!(got, [1, 1, 2, 0]);
    // Seventeen distinct levels cannot all fit into 1..=15: the lowest share 1.
    let mut many: Vec<SlotAttrs> = (1..=15).map(p).collect();
    many.push(p(1));
    prioritize(&mut many, 15);
    assert_eq!(many[15].priority, 15);
    assert_eq!(
        many[14].priority, 14,
        "old 15 comes right below the chosen one"
    );
    assert_eq!(many[0].priority, 1);
    assert_eq!(many[1].priority, 1);
}

#[test]
#[should_panic(expected = "no slot at position 2")]
fn prioritize_rejects_a_position_outside_the_slots() {
    prioritize(&mut [SlotAttrs::default(); 2], 2);
}

#[test]
fn explain_says_which_slot_and_why() {
    let a = |priority, tries, successful| SlotAttrs {
        priority,
        tries,
        successful,
    };
    assert_eq!(
        explain(&[(SlotId::A, a(1, 0, true)), (SlotId::B, a(2, 1, false))]),
        "B: highest priority 2 with 1 try left; A has priority 1"
    );
    assert_eq!(
        explain(&[(SlotId::A, a(1, 0, true)), (SlotId::B, a(0, 0, false))]),
        "A: highest priority 1, marked successful; B is not bootable (has priority 0)"
    );
    assert_eq!(
        explain(&[(SlotId::A, a(2, 3, false)), (SlotId::B, a(2, 0, true))]),
        "A: priority 2 with 3 tries left ties with B; A wins as the lower partition number"
    );
    assert_eq!(
        explain(&[(SlotId::A, a(0, 0, true)), (SlotId::B, a(2, 0, false))]),
        "no slot is bootable: A has priority 0; \
         B has priority 2 but no tries left and is not marked successful"
    );
}
