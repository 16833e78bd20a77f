//! The fleet's timeline: who took and released a reboot lock slot when,
//! as lines and as a chart. Pure functions over the recorded entries.

use std::time::Duration;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Time since the nodes started.
    pub at: Duration,
    /// `node3`.
    pub node: String,
    /// What happened.
    pub what: String,
}

/// Timeline entries for a change of holders from `before` to `now`:
/// releases first, so that counting along the timeline never overshoots.
pub fn holder_changes(before: &[String], now: &[String], at: Duration) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for n in before.iter().filter(|n| !now.contains(n)) {
        let rest: Vec<&str> = now.iter().map(String::as_str).collect();
        out.push(TimelineEntry {
            at,
            node: n.clone(),
            what: if rest.is_empty() {
                "released its slot (lock free)".to_string()
            } else {
                format!("released its slot (held by {})", rest.join(", "))
            },
        });
    }
    for n in now.iter().filter(|n| !before.contains(n)) {
        out.push(TimelineEntry {
            at,
            node: n.clone(),
            what: format!("took a reboot lock slot (held by {})", now.join(", ")),
        });
    }
    out
}

/// Who held a lock slot when, one row per node and one column per step of
/// `end / columns` (sampled at the column's middle), and a last row with the
/// number of holders per column.
pub fn lock_chart(
    timeline: &[TimelineEntry],
    nodes: &[String],
    end: Duration,
    columns: usize,
) -> String {
    let columns = columns.max(1);
    let held_at = |node: &str, t: Duration| {
        let mut held = false;
        for e in timeline.iter().filter(|e| e.node == node && e.at <= t) {
            if e.what.starts_with("took a reboot lock slot") {
                held = true;
            } else if e.what.starts_with("released its slot") {
                held = false;
            }
        }
        held
    };
    let at = |c: usize| end.mul_f64((c as f64 + 0.5) / columns as f64);
    let mut counts = vec![0usize; columns];
    let mut out = String::new();
    for node in nodes {
        let row: String = (0..columns)
            .map(|c| {
                if held_at(node, at(c)) {
                    counts[c] += 1;
                    '#'
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{node:<7} {row}\n"));
    }
    let total: String = counts
        .iter()
        .map(|&n| char::from_digit(n.min(9) as u32, 10).unwrap_or('9'))
        .collect();
    out.push_str(&format!("{:<7} {total}\n", "holders"));
    out
}

/// `+1.23s  node3  took a reboot lock slot (...)`.
pub fn timeline_line(e: &TimelineEntry) -> String {
    format!("+{:>6.2}s  {:<7} {}", e.at.as_secs_f64(), e.node, e.what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn holder_changes_names_who_took_and_who_released() {
        let at = Duration::from_millis(1500);
        let got = holder_changes(&s(&["node1"]), &s(&["node1", "node2"]), at);
        assert_eq!(
            got,
            [TimelineEntry {
                at,
                node: "node2".into(),
                what: "took a reboot lock slot (held by node1, node2)".into()
            }]
        );
        let got = holder_changes(&s(&["node1", "node2"]), &s(&["node3"]), at);
        let what: Vec<_> = got
            .iter()
            .map(|e| (e.node.as_str(), e.what.as_str()))
            .collect();
        assert_eq!(
            what,
            [
                ("node1", "released its slot (held by node3)"),
                ("node2", "released its slot (held by node3)"),
                ("node3", "took a reboot lock slot (held by node3)"),
            ]
        );
        let got = holder_changes(&s(&["node3"]), &[], at);
        assert_eq!(got[0].what, "released its slot (lock free)");
        assert!(holder_changes(&s(&["a"]), &s(&["a"]), at).is_empty());
    }

    #[test]
    fn lock_chart_samples_each_column_in_its_middle() {
        let e = |ms: u64, node: &str, what: &str| TimelineEntry {
            at: Duration::from_millis(ms),
            node: node.into(),
            what: what.into(),
        };
        let timeline = [
            e(0, "n1", "took a reboot lock slot (held by n1)"),
            e(40, "n1", "released its slot (held by n2)"),
            e(40, "n2", "took a reboot lock slot (held by n2)"),
            e(50, "n2", "booted USR-B"),
            e(80, "n2", "released its slot (lock free)"),
        ];
        let chart = lock_chart(&timeline, &s(&["n1", "n2"]), Duration::from_millis(100), 10);
        assert_eq!(
            chart,
            "n1      ####......\nn2      ....####..\nholders 1111111100\n"
        );
    }

    #[test]
    fn timeline_line_golden() {
        let e = TimelineEntry {
            at: Duration::from_millis(1234),
            node: "node3".into(),
            what: "booted USR-B".into(),
        };
        assert_eq!(timeline_line(&e), "+  1.23s  node3   booted USR-B");
    }
}
