//! The pure reboot decision (DESIGN §6): a staged update reboots only inside
//! a maintenance window AND, for the lock strategies, while this node holds
//! the cluster lock. The caller observes the clock and the lock and carries
//! the decision out; nothing here does I/O.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

use super::windows::Windows;

/// How a node coordinates its reboot (`[reboot] strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Never reboot automatically; an operator reboots by hand.
    Off,
    /// Reboot as soon as the window allows.
    Immediate,
    /// Hold a slot of the etcd v3 reboot semaphore while rebooting.
    EtcdLock,
    /// Hold a FleetLock slot while rebooting.
    FleetLock,
}

impl Strategy {
    /// Every strategy, in documentation order.
    pub const ALL: [Strategy; 4] = [
        Strategy::Off,
        Strategy::Immediate,
        Strategy::EtcdLock,
        Strategy::FleetLock,
    ];

    /// The config spelling: `off`, `immediate`, `etcd-lock`, `fleet-lock`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Off => "off",
            Strategy::Immediate => "immediate",
            Strategy::EtcdLock => "etcd-lock",
            Strategy::FleetLock => "fleet-lock",
        }
    }

    /// Whether rebooting needs a cluster lock.
    pub fn needs_lock(self) -> bool {
        matches!(self, Strategy::EtcdLock | Strategy::FleetLock)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| {
                format!("unknown strategy {s:?}: use \"off\", \"immediate\", \"etcd-lock\" or \"fleet-lock\"")
            })
    }
}

/// What the caller knows about the cluster lock right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// The caller has not taken part in locking (e.g. strategy `immediate`).
    NotNeeded,
    /// This node holds a slot.
    Held,
    /// This node does not hold a slot (all taken, or not asked yet).
    NotHeld,
    /// The lock could not be reached or read; the text says why.
    Error(String),
}

/// The reboot settings the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootPolicy {
    /// How to coordinate.
    pub strategy: Strategy,
    /// When rebooting is allowed.
    pub windows: Windows,
}

/// What to do with a staged update; each carries a reason for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the pre-reboot steps and reboot.
    RebootNow {
        /// Why rebooting is allowed now.
        reason: String,
    },
    /// Outside every window: ask again at `at`. A lock held now should be
    /// released so that other nodes can use the slot meanwhile.
    WaitUntil {
        /// When the next window opens.
        at: DateTime<Utc>,
        /// Status line text.
        reason: String,
    },
    /// Inside a window but without the lock: try to acquire it, then ask again.
    WaitForLock {
        /// Status line text.
        reason: String,
    },
    /// Never reboot automatically (strategy `off`, or no window ever opens).
    Never {
        /// Status line text.
        reason: String,
    },
}

impl Decision {
    /// The human reason, for `STATUS=` and `updatectl status`.
    pub fn reason(&self) -> &str {
        match self {
            Decision::RebootNow { reason }
            | Decision::WaitUntil { reason, .. }
            | Decision::WaitForLock { reason }
            | Decision::Never { reason } => reason,
        }
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Decide what to do at `now` with a staged update.
///
/// Order matters: the window is checked before the lock so that a node never
/// occupies one of the group's few lock slots while it is not allowed to
/// reboot anyway. A lock strategy reboots only on [`LockState::Held`]; any
/// other lock state (including `NotNeeded`, which contradicts the strategy)
/// means waiting for the lock, never rebooting without it.
pub fn decide(now: DateTime<Utc>, policy: &RebootPolicy, lock: &LockState) -> Decision {
    if policy.strategy == Strategy::Off {
        return Decision::Never {
            reason: "reboot strategy is off: reboot by hand to finish the update".to_string(),
        };
    }
    let windows = &policy.windows;
    if !windows.contains(now) {
        return match windows.next_opening(now) {
            Some(at) => Decision::WaitUntil {
                at,
                reason: format!(
                    "waiting for the maintenance window, which opens at {}",
                    timestamp(at)
                ),
            },
            None => Decision::Never {
                reason: "no maintenance window ever opens: check [[reboot.window]]".to_string(),
            },
        };
    }
    let window_note = match windows.current_window_end(now) {
        Some(end) => format!("inside the maintenance window until {}", timestamp(end)),
        None if windows.is_always_open() => "no maintenance window configured".to_string(),
        None => "inside the maintenance window".to_string(),
    };
    let lock_name = match policy.strategy {
        Strategy::EtcdLock => "etcd reboot lock",
        Strategy::FleetLock => "FleetLock reboot lock",
        Strategy::Off | Strategy::Immediate => {
            return Decision::RebootNow {
                reason: format!("strategy {}: {window_note}", policy.strategy),
            }
        }
    };
    match lock {
        LockState::Held => Decision::RebootNow {
            reason: format!("holding the {lock_name}; {window_note}"),
        },
        LockState::NotHeld | LockState::NotNeeded => Decision::WaitForLock {
            reason: format!("waiting for a slot of the {lock_name}; {window_note}"),
        },
        LockState::Error(error) => Decision::WaitForLock {
            reason: format!("cannot use the {lock_name} ({error}); retrying; {window_note}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reboot::windows::Window;
    use chrono::{NaiveTime, TimeZone, Weekday};
    use chrono_tz::Tz;

    /// Sat/Sun 23:00 for 120 minutes, UTC.
    fn weekend_nights() -> Windows {
        let start = NaiveTime::from_hms_opt(23, 0, 0).unwrap();
        Windows::new(
            Tz::UTC,
            vec![Window::new(vec![Weekday::Sat, Weekday::Sun], start, 120).unwrap()],
        )
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        // 2025-03-01 is a Saturday.
        Utc.with_ymd_and_hms(2025, 3, d, h, m, 0).unwrap()
    }

    #[derive(Debug, PartialEq)]
    enum Kind {
        Reboot,
        Wait,
        Lock,
        Never,
    }

    fn kind(d: &Decision) -> Kind {
        match d {
            Decision::RebootNow { .. } => Kind::Reboot,
            Decision::WaitUntil { .. } => Kind::Wait,
            Decision::WaitForLock { .. } => Kind::Lock,
            Decision::Never { .. } => Kind::Never,
        }
    }

    #[test]
    fn exhaustive_table() {
        use Kind::*;
        use Strategy::*;
        let inside = at(1, 23, 30);
        let outside = at(3, 12, 0);
        let err = LockState::Error("connection refused".into());
        let locks = [
            LockState::NotNeeded,
            LockState::Held,
            LockState::NotHeld,
            err,
        ];
        // (strategy, window: Some(inside?) / None = no windows, expected per lock state)
        let table: Vec<(Strategy, Option<bool>, [Kind; 4])> = vec![
            (Off, Some(true), [Never, Never, Never, Never]),
            (Off, Some(false), [Never, Never, Never, Never]),
            (Off, None, [Never, Never, Never, Never]),
            (Immediate, Some(true), [Reboot, Reboot, Reboot, Reboot]),
            (Immediate, Some(false), [Wait, Wait, Wait, Wait]),
            (Immediate, None, [Reboot, Reboot, Reboot, Reboot]),
            (EtcdLock, Some(true), [Lock, Reboot, Lock, Lock]),
            (EtcdLock, Some(false), [Wait, Wait, Wait, Wait]),
            (EtcdLock, None, [Lock, Reboot, Lock, Lock]),
            (FleetLock, Some(true), [Lock, Reboot, Lock, Lock]),
            (FleetLock, Some(false), [Wait, Wait, Wait, Wait]),
            (FleetLock, None, [Lock, Reboot, Lock, Lock]),
        ];
        assert_eq!(table.len(), Strategy::ALL.len() * 3);
        for (strategy, window, expected) in table {
            let (windows, now) = match window {
                Some(true) => (weekend_nights(), inside),
                Some(false) => (weekend_nights(), outside),
                None => (Windows::always_open(), outside),
            };
            let policy = RebootPolicy { strategy, windows };
            for (lock, want) in locks.iter().zip(expected) {
                let got = decide(now, &policy, lock);
                assert_eq!(kind(&got), want, "{strategy} {window:?} {lock:?}: {got:?}");
                assert!(!got.reason().is_empty());
            }
        }
    }

    #[test]
    fn wait_until_names_the_next_opening() {
        let policy = RebootPolicy {
            strategy: Strategy::EtcdLock,
            windows: weekend_nights(),
        };
        let got = decide(at(3, 12, 0), &policy, &LockState::Held);
        assert_eq!(
            got,
            Decision::WaitUntil {
                at: at(8, 23, 0),
                reason: "waiting for the maintenance window, which opens at 2025-03-08T23:00:00Z"
                    .into()
            }
        );
    }

    #[test]
    fn reasons_name_lock_and_window_end() {
        let policy = RebootPolicy {
            strategy: Strategy::FleetLock,
            windows: weekend_nights(),
        };
        let now = at(1, 23, 30);
        assert_eq!(
            decide(now, &policy, &LockState::Held).reason(),
            "holding the FleetLock reboot lock; inside the maintenance window until 2025-03-02T01:00:00Z"
        );
        let reason = decide(now, &policy, &LockState::Error("timeout".into()))
            .reason()
            .to_string();
        assert!(reason.contains("(timeout)"), "{reason}");
        let immediate = RebootPolicy {
            strategy: Strategy::Immediate,
            windows: Windows::always_open(),
        };
        assert_eq!(
            decide(now, &immediate, &LockState::NotNeeded).reason(),
            "strategy immediate: no maintenance window configured"
        );
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
        }
        assert!("reboot"
            .parse::<Strategy>()
            .unwrap_err()
            .contains("unknown strategy \"reboot\""));
        assert!(Strategy::EtcdLock.needs_lock() && !Strategy::Immediate.needs_lock());
    }
}
