//! Identity of the two USR slots. Slots are always addressed by identity
//! (label `USR-A` / `USR-B`), never by a partition index taken from input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the two USR slots of an A/B disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SlotId {
    /// The slot whose GPT partition label is `USR-A`.
    A,
    /// The slot whose GPT partition label is `USR-B`.
    B,
}

impl SlotId {
    /// Both slots, in label order.
    pub const ALL: [SlotId; 2] = [SlotId::A, SlotId::B];

    /// The other slot of the pair.
    pub fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }

    /// The GPT partition label of this slot (`USR-A` or `USR-B`).
    pub fn label(self) -> &'static str {
        match self {
            SlotId::A => "USR-A",
            SlotId::B => "USR-B",
        }
    }

    /// The slot whose GPT label is `label`, if it is one of ours.
    pub fn from_label(label: &str) -> Option<SlotId> {
        match label {
            "USR-A" => Some(SlotId::A),
            "USR-B" => Some(SlotId::B),
            _ => None,
        }
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SlotId::A => "A",
            SlotId::B => "B",
        })
    }
}

impl FromStr for SlotId {
    type Err = anyhow::Error;

    /// Accepts `A`, `B` (any case) and the labels `USR-A`, `USR-B`.
    fn from_str(s: &str) -> anyhow::Result<SlotId> {
        match s.to_ascii_uppercase().as_str() {
            "A" | "USR-A" => Ok(SlotId::A),
            "B" | "USR-B" => Ok(SlotId::B),
            _ => anyhow::bail!("unknown slot {s:?}: expected A or B"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        for slot in SlotId::ALL {
            assert_eq!(slot.to_string().parse::<SlotId>().unwrap(), slot);
            assert_eq!(slot.label().parse::<SlotId>().unwrap(), slot);
            assert_eq!(SlotId::from_label(slot.label()), Some(slot));
            assert_eq!(slot.other().other(), slot);
            assert_ne!(slot.other(), slot);
        }
        assert_eq!("b".parse::<SlotId>().unwrap(), SlotId::B);
        let err = "C".parse::<SlotId>().unwrap_err().to_string();
        assert!(err.contains("expected A or B"), "{err}");
        assert_eq!(SlotId::from_label("ROOT"), None);
    }
}
