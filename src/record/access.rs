//! Who may open a room's recordings besides the operator: the room's host, with a key
//! the server gives it and nobody else.
//!
//! Each room that has (or had) a host has one random key (128 bits from the
//! operating system's generator, as hex). The home shard makes a new one whenever the
//! room gets a new host, so a host the role passed from loses access, and sends it
//! in `recordingAccess`, a message only the host's page receives. The page keeps it
//! in a cookie for `/recordings` (`lanrelay-rec-…`, `Secure`, `SameSite=Strict`), so
//! the key never appears in a URL (nor in the server's logs, which never print it),
//! and the listing page and its `<video>` elements send it by themselves. A key opens
//! only the files of its room ([`crate::record::room_prefix`]); it stays valid after
//! the call ends (the host watches the recording afterwards) until the room has a
//! new host or the server restarts.

use std::collections::HashMap;
use std::sync::Mutex;

/// The longest list of rooms a request may name keys for (its cookies), so that a
/// request full of cookies costs no more than a few comparisons.
pub(crate) const MAX_KEYS_PER_REQUEST: usize = 16;

/// Rooms kept at most: the oldest key goes first beyond this (a server that has
/// seen more rooms than this since it started forgets the earliest hosts' access).
const MAX_ROOMS: usize = 10_000;

/// The rooms' keys. Taken by the home shards when a room's host changes and by
/// `/recordings` requests, never on the media path; a small registry behind a std
/// `Mutex`, never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct AccessKeys {
    /// Room → its key, and when it was made (a counter, to forget the oldest first).
    keys: Mutex<HashMap<String, (String, u64)>>,
    made: std::sync::atomic::AtomicU64,
}

impl AccessKeys {
    /// A fresh key for `room` (the previous one, if any, no longer opens anything).
    pub(crate) fn renew(&self, room: &str) -> String {
        let key = format!("{:032x}", rand::random::<u128>());
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_ROOMS && !keys.contains_key(room) {
            if let Some(oldest) = keys
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(r, _)| r.clone())
            {
                keys.remove(&oldest);
            }
        }
        keys.insert(room.to_string(), (key.clone(), n));
        key
    }

    /// `room`'s key, made if it has none yet.
    pub(crate) fn key(&self, room: &str) -> String {
        let existing = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .map(|(k, _)| k.clone());
        existing.unwrap_or_else(|| self.renew(room))
    }

    /// The rooms whose current key is among `given` (each compared in constant
    /// time; at most [`MAX_KEYS_PER_REQUEST`] looked at).
    pub(crate) fn rooms_for(&self, given: &[String]) -> Vec<String> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut rooms = Vec::new();
        for g in given.iter().take(MAX_KEYS_PER_REQUEST) {
            // A key is 32 hex digits; anything else cannot match.
            if g.len() != 32 {
                continue;
            }
            for (room, (key, _)) in keys.iter() {
                if crate::token::matches(g, key) && !rooms.contains(room) {
                    rooms.push(room.clone());
                }
            }
        }
        rooms
    }
}

/// The name of the cookie that carries a key: one per key, so that a person hosting
/// two rooms (or one room after another) keeps access to both. The page sets it;
/// the server only reads cookies named so.
pub(crate) const COOKIE_PREFIX: &str = "lanrelay-rec-";

/// The keys in a `Cookie` header's cookies named [`COOKIE_PREFIX`]`…`.
pub(crate) fn keys_in_cookies<'a>(headers: impl Iterator<Item = &'a str>) -> Vec<String> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            name.starts_with(COOKIE_PREFIX)
                .then(|| value.trim().trim_matches('"').to_string())
        })
        .take(MAX_KEYS_PER_REQUEST)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_opens_its_room_until_renewed() {
        let keys = AccessKeys::default();
        let a = keys.key("maths");
        assert_eq!(a.len(), 32);
        assert_eq!(keys.key("maths"), a, "the same key until renewed");
        let b = keys.key("physics");
        assert_ne!(a, b);
        assert_eq!(keys.rooms_for(std::slice::from_ref(&a)), ["maths"]);
        assert_eq!(keys.rooms_for(&[a.clone(), b.clone()]).len(), 2);
        let c = keys.renew("maths");
        assert!(
            keys.rooms_for(&[a]).is_empty(),
            "the old host's key is dead"
        );
        assert_eq!(keys.rooms_for(&[c]), ["maths"]);
        assert!(keys.rooms_for(&["0".repeat(32), String::new()]).is_empty());
    }

    #[test]
    fn keys_come_from_cookies_named_for_them() {
        let got = keys_in_cookies(
            [
                "a=1; lanrelay-rec-1234=abcd",
                "lanrelay-rec-9=\"ef\"; other=x",
            ]
            .into_iter(),
        );
        assert_eq!(got, ["abcd", "ef"]);
    }
}
