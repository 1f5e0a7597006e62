//! Secrets given by clients (room tokens, the operator token) and how they are checked.
//! Every comparison of a secret goes through [`matches`], so none of them answers
//! sooner for a guess that shares a longer prefix with the real token (a plain `==`
//! stops at the first differing byte, which a patient client on the LAN can time).
//! A room's token is looked up by [`room_key`], so that the room's look-alikes need
//! it too.

use unicode_normalization::UnicodeNormalization;

/// Whether `given` is exactly `expected`, compared in constant time over the bytes
/// (AWS-LC's `CRYPTO_memcmp`). Only the length may show in the timing: tokens are the
/// operator's choice, and their length is no useful hint.
pub(crate) fn matches(given: &str, expected: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_ok()
}

/// The form of a room name its token is looked up by: trimmed, NFKC (full-width
/// `ｓｅｃｒｅｔ`, ligatures and other compatibility forms become their plain letters),
/// lower case. Rooms stay distinct by their exact names; only the token check sees
/// `Secret`, `SECRET` and `ｓｅｃｒｅｔ` as `secret`, so a look-alike of a protected room
/// cannot be opened without that room's token. (Look-alikes from other scripts, such
/// as a Cyrillic `е` for `e`, are not caught.)
pub(crate) fn room_key(room: &str) -> String {
    room.trim()
        .nfkc()
        .flat_map(char::to_lowercase)
        .nfkc()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_key() {
        for alike in [
            "secret",
            "Secret",
            "SECRET",
            " secret ",
            "ｓｅｃｒｅｔ",
            "ＳＥＣＲＥＴ",
            "Ｓecret",
        ] {
            assert_eq!(room_key(alike), "secret", "{alike:?}");
        }
        assert_eq!(room_key("ﬁsh"), "fish", "ligature");
        assert_eq!(room_key("Café"), room_key("Cafe\u{301}"), "composed or not");
        assert_eq!(room_key("Straße"), "straße");
        assert_ne!(room_key("secrets"), "secret");
    }

    #[test]
    fn only_the_exact_token_matches() {
        assert!(matches("s3cret", "s3cret"));
        assert!(matches("", ""));
        assert!(!matches("s3cre", "s3cret"), "a prefix");
        assert!(!matches("s3cret!", "s3cret"), "longer");
        assert!(!matches("S3CRET", "s3cret"), "case matters in a token");
        assert!(!matches("s3creu", "s3cret"), "last byte differs");
        assert!(!matches("", "s3cret"));
        assert!(!matches("ｓ3cret", "s3cret"), "not normalised");
    }
}
