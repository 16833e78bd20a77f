//! Where a group's semaphore lives in etcd (DESIGN §6).
//!
//! Same paths as locksmith, minus the etcd v2 leading slash (v3 keys are flat
//! byte strings and locksmith's v3 successors dropped it too): the group
//! `default` uses locksmith's group-less key, so a fleet that used plain
//! locksmith keeps its semaphore; any other group gets its own key under
//! `groups/`.

/// Key prefix shared by every group.
pub const KEY_PREFIX: &str = "coreos.com/updateengine/rebootlock";

/// The group that maps to locksmith's group-less key.
pub const DEFAULT_GROUP: &str = "default";

/// Longest group name accepted.
pub const MAX_GROUP_LEN: usize = 128;

/// The semaphore key of `group`, or why the name cannot be used.
pub fn semaphore_key(group: &str) -> Result<String, String> {
    validate_group(group)?;
    if group == DEFAULT_GROUP {
        Ok(format!("{KEY_PREFIX}/semaphore"))
    } else {
        Ok(format!("{KEY_PREFIX}/groups/{group}/semaphore"))
    }
}

/// A group name is a path segment: ASCII letters, digits, `.`, `_`, `-`,
/// not `.`/`..`, so it can never point at another group's key.
pub fn validate_group(group: &str) -> Result<(), String> {
    let ok_chars = group
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if group.is_empty() || group.len() > MAX_GROUP_LEN || !ok_chars || group == "." || group == ".."
    {
        return Err(format!(
            "lock group {group:?} is not valid: use 1 to {MAX_GROUP_LEN} of A-Z a-z 0-9 . _ - (not \".\" or \"..\")"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_group_uses_the_locksmith_key() {
        assert_eq!(
            semaphore_key("default").unwrap(),
            "coreos.com/updateengine/rebootlock/semaphore"
        );
    }

    #[test]
    fn other_groups_get_their_own_key() {
        assert_eq!(
            semaphore_key("workers-eu.1").unwrap(),
            "coreos.com/updateengine/rebootlock/groups/workers-eu.1/semaphore"
        );
    }

    #[test]
    fn bad_group_names_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "sp ace",
            "ü",
            &"g".repeat(129),
        ] {
            let err = semaphore_key(bad).unwrap_err();
            assert!(err.contains("is not valid"), "{bad:?}: {err}");
        }
    }
}
