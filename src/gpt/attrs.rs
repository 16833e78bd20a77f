//! Pure bit math on the 64-bit attribute field of a GPT partition entry.
//!
//! ChromeOS/CoreOS keep the A/B boot state in the partition-type-specific
//! upper half of the attributes: priority in bits 48-51, tries in bits 52-55
//! and the successful flag in bit 56 (DESIGN §2). Every other bit belongs to
//! someone else (bit 0 "required", bit 2 "legacy BIOS bootable", bits 57-63
//! for other tools) and must survive every change untouched.

use serde::Serialize;

/// First bit of the 4-bit priority field.
pub const PRIORITY_SHIFT: u32 = 48;
/// First bit of the 4-bit tries field.
pub const TRIES_SHIFT: u32 = 52;
/// The successful flag.
pub const SUCCESSFUL_SHIFT: u32 = 56;
/// Largest value of the 4-bit priority and tries fields.
pub const FIELD_MAX: u8 = 15;
/// Every attribute bit that the A/B fields own (48-56).
pub const AB_MASK: u64 = (0xF << PRIORITY_SHIFT) | (0xF << TRIES_SHIFT) | (1 << SUCCESSFUL_SHIFT);

/// The A/B boot state of one USR partition, decoded from its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct SlotAttrs {
    /// 0-15; 0 means "never boot".
    pub priority: u8,
    /// 0-15; boot attempts left before the slot counts as failed.
    pub tries: u8,
    /// The slot has booted and passed its health checks.
    pub successful: bool,
}

impl SlotAttrs {
    /// Decode the A/B fields of a partition entry's attribute word.
    pub fn from_bits(attributes: u64) -> SlotAttrs {
        SlotAttrs {
            priority: ((attributes >> PRIORITY_SHIFT) & 0xF) as u8,
            tries: ((attributes >> TRIES_SHIFT) & 0xF) as u8,
            successful: (attributes >> SUCCESSFUL_SHIFT) & 1 == 1,
        }
    }

    /// `attributes` with the A/B fields replaced by `self` and every other
    /// bit kept. Values above 15 saturate at 15 (the fields are 4 bits wide;
    /// the selection code never produces larger values).
    pub fn apply(self, attributes: u64) -> u64 {
        let priority = u64::from(self.priority.min(FIELD_MAX));
        let tries = u64::from(self.tries.min(FIELD_MAX));
        (attributes & !AB_MASK)
            | (priority << PRIORITY_SHIFT)
            | (tries << TRIES_SHIFT)
            | (u64::from(self.successful) << SUCCESSFUL_SHIFT)
    }

    /// Whether `gptprio.next` may pick this slot: priority above zero and
    /// either tries left or already marked successful.
    pub fn is_bootable(self) -> bool {
        self.priority > 0 && (self.tries > 0 || self.successful)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_flatcar_fresh_install_bits() {
        // USR-A on a fresh Flatcar disk: priority 1, tries 0, successful 1
        // (`sfdisk` prints these bits as GUID:48,56).
        let bits = (1 << 48) | (1 << 56);
        let attrs = SlotAttrs::from_bits(bits);
        assert_eq!(
            attrs,
            SlotAttrs {
                priority: 1,
                tries: 0,
                successful: true
            }
        );
        assert!(attrs.is_bootable());
        assert_eq!(attrs.apply(0), bits);
    }

    #[test]
    fn out_of_range_values_saturate() {
        let attrs = SlotAttrs {
            priority: 200,
            tries: 16,
            successful: false,
        };
        assert_eq!(
            SlotAttrs::from_bits(attrs.apply(0)),
            SlotAttrs {
                priority: 15,
                tries: 15,
                successful: false
            }
        );
    }

    #[test]
    fn bootable_needs_priority_and_tries_or_success() {
        for priority in 0..=15 {
            for tries in 0..=15 {
                for successful in [false, true] {
                    let a = SlotAttrs {
                        priority,
                        tries,
                        successful,
                    };
                    assert_eq!(a.is_bootable(), priority > 0 && (tries > 0 || successful));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn apply_preserves_every_other_bit(bits in any::<u64>(), p in 0u8..=15, t in 0u8..=15, s in any::<bool>()) {
            let attrs = SlotAttrs { priority: p, tries: t, successful: s };
            let out = attrs.apply(bits);
            prop_assert_eq!(out & !AB_MASK, bits & !AB_MASK);
            prop_assert_eq!(SlotAttrs::from_bits(out), attrs);
            // Round trip: applying what we read changes nothing.
            prop_assert_eq!(SlotAttrs::from_bits(bits).apply(bits), bits);
        }
    }
}
