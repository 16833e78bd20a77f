//! What to do at start, from the persisted state and the facts of this boot.
//! Pure: the caller reads `state.json`, the GPT and the boot id, then carries
//! out the returned decision. This is what makes a kill at any point safe: an
//! interrupted install resumes (after its target was made non-bootable), an
//! install that finished waits for its reboot, and a boot is judged.

use super::state::Staged;
use super::store::{Operation, Persisted};
use crate::slot::SlotId;

/// Facts about the running boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFacts {
    /// The slot the machine booted from.
    pub booted: SlotId,
    /// The `successful` bit of the booted slot.
    pub booted_successful: bool,
    /// `/proc/sys/kernel/random/boot_id` of this boot.
    pub boot_id: String,
    /// The running OS version.
    pub current_version: String,
}

/// The decision taken at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing pending: wait for the first check.
    Fresh,
    /// An install was interrupted: make its target non-bootable, then resume
    /// from the payload checkpoint (the final read-back verifies everything).
    ResumeInstall(Operation),
    /// An interrupted install targeted the booted slot, which must never be
    /// written: drop it and start clean.
    DiscardInstall(Operation),
    /// The install finished in this same boot: keep waiting for the reboot.
    Staged(Staged),
    /// The booted slot is on trial: run the health checks.
    TrialBoot {
        /// Version booted on trial.
        version: String,
        /// Version updated from, when known.
        previous_version: Option<String>,
        /// The booted slot.
        slot: SlotId,
    },
    /// The slot was marked good but the engine stopped before recording it:
    /// report `3/2` and forget the install.
    AlreadyGood {
        /// The version now good.
        version: String,
        /// Version updated from.
        previous_version: String,
    },
    /// The machine rebooted and the installed slot did not stay booted:
    /// report `3/0 errorcode=44`, set its priority to 0, block the version.
    RolledBack {
        /// The version that failed.
        version: String,
        /// Its slot.
        slot: SlotId,
    },
}

/// Decide what to do at start.
pub fn recover(persisted: &Persisted, facts: &BootFacts) -> Recovery {
    if let Some(op) = &persisted.operation {
        // Whatever the files say, the booted slot is never a write target.
        if op.target == facts.booted {
            return Recovery::DiscardInstall(op.clone());
        }
        return Recovery::ResumeInstall(op.clone());
    }
    if let Some(installed) = &persisted.installed {
        if installed.slot == facts.booted {
            return if facts.booted_successful {
                Recovery::AlreadyGood {
                    version: installed.version.clone(),
                    previous_version: installed.previous_version.clone(),
                }
            } else {
                Recovery::TrialBoot {
                    version: installed.version.clone(),
                    previous_version: Some(installed.previous_version.clone()),
                    slot: installed.slot,
                }
            };
        }
        if installed.boot_id == facts.boot_id {
            return Recovery::Staged(Staged {
                version: installed.version.clone(),
                slot: installed.slot,
            });
        }
        return Recovery::RolledBack {
            version: installed.version.clone(),
            slot: installed.slot,
        };
    }
    if !facts.booted_successful {
        // On trial without our record (state wiped, or an offline
        // `update-payload apply`): still judge the boot.
        return Recovery::TrialBoot {
            version: facts.current_version.clone(),
            previous_version: None,
            slot: facts.booted,
        };
    }
    Recovery::Fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::Offer;
    use crate::engine::store::{Installed, Stage};
    use chrono::TimeZone;

    fn facts(booted: SlotId, successful: bool, boot_id: &str) -> BootFacts {
        BootFacts {
            booted,
            booted_successful: successful,
            boot_id: boot_id.into(),
            current_version: "1.0.0".into(),
        }
    }

    fn operation(target: SlotId, stage: Stage) -> Operation {
        Operation {
            offer: Offer {
                version: "2.0.0".into(),
                urls: vec![],
                size: 1,
                sha256_hex: String::new(),
            },
            target,
            from_version: "1.0.0".into(),
            stage,
            started_at: chrono::Utc.timestamp_opt(0, 0).unwrap(),
            network_bytes: 0,
        }
    }

    fn installed() -> Persisted {
        Persisted {
            installed: Some(Installed {
                version: "2.0.0".into(),
                slot: SlotId::B,
                previous_version: "1.0.0".into(),
                boot_id: "boot-1".into(),
                installed_at: chrono::Utc.timestamp_opt(0, 0).unwrap(),
            }),
            ..Persisted::default()
        }
    }

    #[test]
    fn nothing_pending_is_fresh() {
        let p = Persisted::default();
        assert_eq!(recover(&p, &facts(SlotId::A, true, "b")), Recovery::Fresh);
    }

    #[test]
    fn an_interrupted_install_resumes_at_every_stage_and_after_a_reboot() {
        for stage in [Stage::Downloading, Stage::Verifying, Stage::Finalizing] {
            let p = Persisted {
                operation: Some(operation(SlotId::B, stage)),
                ..Persisted::default()
            };
            for boot in ["boot-1", "boot-2"] {
                assert_eq!(
                    recover(&p, &facts(SlotId::A, true, boot)),
                    Recovery::ResumeInstall(operation(SlotId::B, stage))
                );
            }
        }
    }

    #[test]
    fn an_install_aimed_at_the_booted_slot_is_dropped() {
        let p = Persisted {
            operation: Some(operation(SlotId::A, Stage::Downloading)),
            ..Persisted::default()
        };
        assert!(matches!(
            recover(&p, &facts(SlotId::A, true, "b")),
            Recovery::DiscardInstall(_)
        ));
    }

    #[test]
    fn finished_install_waits_in_the_same_boot() {
        assert_eq!(
            recover(&installed(), &facts(SlotId::A, true, "boot-1")),
            Recovery::Staged(Staged {
                version: "2.0.0".into(),
                slot: SlotId::B
            })
        );
    }

    #[test]
    fn new_slot_booted_on_trial_is_judged() {
        assert_eq!(
            recover(&installed(), &facts(SlotId::B, false, "boot-2")),
            Recovery::TrialBoot {
                version: "2.0.0".into(),
                previous_version: Some("1.0.0".into()),
                slot: SlotId::B
            }
        );
        assert_eq!(
            recover(&installed(), &facts(SlotId::B, true, "boot-2")),
            Recovery::AlreadyGood {
                version: "2.0.0".into(),
                previous_version: "1.0.0".into()
            }
        );
    }

    #[test]
    fn old_slot_after_a_reboot_is_a_rollback() {
        assert_eq!(
            recover(&installed(), &facts(SlotId::A, true, "boot-2")),
            Recovery::RolledBack {
                version: "2.0.0".into(),
                slot: SlotId::B
            }
        );
    }

    #[test]
    fn unrecorded_trial_boot_is_still_judged() {
        assert_eq!(
            recover(&Persisted::default(), &facts(SlotId::B, false, "b")),
            Recovery::TrialBoot {
                version: "1.0.0".into(),
                previous_version: None,
                slot: SlotId::B
            }
        );
    }
}
