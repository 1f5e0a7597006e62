//! Secrets given by clients (room tokens, the operator token) and how they are checked.
//! Every comparison of a secret goes through [`matches`], so none of them answers
//! sooner for a guess that shares a longer prefix with the real token (a plain `==`
//! stops at the first differing byte, which a patient client on the LAN can time).

/// Whether `given` is exactly `expected`, compared in constant time over the bytes
/// (AWS-LC's `CRYPTO_memcmp`). Only the length may show in the timing: tokens are the
/// operator's choice, and their length is no useful hint.
pub(crate) fn matches(given: &str, expected: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
