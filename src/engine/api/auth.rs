//! Who may change the engine: the peer of a unix socket connection, read with
//! SO_PEERCRED, is allowed to change anything when it is root, when its
//! primary group (from SO_PEERCRED) is the configured admin group, or when its
//! user is listed as a member of that group in the group database
//! (supplementary membership, as `id -G` would show after a fresh login).
//! Everyone may read.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Group, Uid, User};
use tokio::net::UnixListener;
use tracing::warn;

/// Credentials of the process at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Effective user id at connect time.
    pub uid: u32,
    /// Effective primary group id at connect time.
    pub gid: u32,
    /// Process id at connect time.
    pub pid: i32,
}

/// A peer whose credentials could not be read: never privileged.
const UNKNOWN: Peer = Peer {
    uid: u32::MAX,
    gid: u32::MAX,
    pid: 0,
};

impl Peer {
    /// Read SO_PEERCRED of a connected unix socket.
    pub fn of(socket: &impl AsFd) -> Peer {
        match getsockopt(socket, PeerCredentials) {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            Err(e) => {
                warn!(error = %e, "cannot read the peer credentials; treating the client as unprivileged");
                UNKNOWN
            }
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, UnixListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        Peer::of(stream.io())
    }
}

/// Who may change things besides root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Members of this group may change things too.
    pub admin_group: Option<u32>,
}

impl AccessPolicy {
    /// May `peer` change the engine (start a check)? `members` lists the
    /// user names of the admin group, `user_name` names the peer's uid.
    pub fn may_change(&self, peer: &Peer, user_name: Option<&str>, members: &[String]) -> bool {
        if *peer == UNKNOWN {
            return false;
        }
        if peer.uid == 0 {
            return true;
        }
        let Some(group) = self.admin_group else {
            return false;
        };
        peer.gid == group || user_name.is_some_and(|name| members.iter().any(|m| m == name))
    }

    /// `may_change` with the names looked up in the user and group databases.
    pub fn allows(&self, peer: &Peer) -> bool {
        let (user_name, members) = match self.admin_group {
            Some(gid) if peer.uid != 0 => (
                User::from_uid(Uid::from_raw(peer.uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name),
                Group::from_gid(Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.mem)
                    .unwrap_or_default(),
            ),
            _ => (None, Vec::new()),
        };
        self.may_change(peer, user_name.as_deref(), &members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer { uid, gid, pid: 1 }
    }

    #[test]
    fn root_always_others_only_through_the_group() {
        let closed = AccessPolicy::default();
        assert!(closed.may_change(&peer(0, 0), None, &[]));
        assert!(!closed.may_change(&peer(1000, 1000), Some("alice"), &["alice".into()]));

        let open = AccessPolicy {
            admin_group: Some(500),
        };
        assert!(
            open.may_change(&peer(1000, 500), None, &[]),
            "primary group"
        );
        assert!(
            open.may_change(&peer(1000, 1000), Some("alice"), &["alice".into()]),
            "supplementary member"
        );
        assert!(!open.may_change(&peer(1001, 1000), Some("bob"), &["alice".into()]));
        assert!(!open.may_change(&peer(1001, 1000), None, &["alice".into()]));
        assert!(!open.may_change(&UNKNOWN, None, &[]));
    }

    #[test]
    fn reads_its_own_credentials_from_a_socket_pair() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = Peer::of(&a);
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(me.gid, nix::unistd::getegid().as_raw());
        assert_eq!(me.pid, std::process::id() as i32);
        // The group database lookup path: root is allowed without one.
        assert_eq!(AccessPolicy::default().allows(&me), me.uid == 0);
    }

    #[test]
    fn unreadable_credentials_are_unprivileged() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(Peer::of(&file), UNKNOWN);
        assert!(!AccessPolicy {
            admin_group: Some(0)
        }
        .allows(&UNKNOWN));
    }
}
