//! Room and participant names: what the server accepts (the protocol's rule, so
//! `protocol` re-exports these), and why it refuses a name.

/// Longest room or participant name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Checks a room or participant name: non-empty after trimming, at most
/// [`MAX_NAME_CHARS`] characters, no control or invisible formatting characters
/// ([`check_name`] says which rule a name breaks).
pub fn valid_name(s: &str) -> bool {
    check_name(s).is_ok()
}

/// Why a room or participant name is refused; the message completes "the name ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("contains the control character U+{:04X}", u32::from(*.0))]
    Control(char),
    /// Zero-width spaces, joiners, direction marks and the like: two names that differ
    /// only by them look the same, so `secret` + U+200B would be a second room that
    /// looks like the protected `secret` but is open.
    #[error(
        "contains the invisible formatting character U+{:04X} (names that look the \
         same must be the same name)",
        u32::from(*.0)
    )]
    Invisible(char),
}

/// Checks a room or participant name as [`valid_name`] does, saying why it is refused.
/// Leading and trailing white space is not part of the name (joins trim it).
pub fn check_name(s: &str) -> Result<(), NameError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(NameError::Empty);
    }
    if t.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Err(NameError::Control(c));
    }
    if let Some(c) = t.chars().find(|c| is_format_char(*c)) {
        return Err(NameError::Invisible(c));
    }
    Ok(())
}

/// Checks a participant's display name: as [`check_name`], except that the zero-width
/// joiner (U+200D) is allowed, since emoji such as 👨‍👩‍👧 are made with it. A display
/// name opens nothing, so a look-alike does no harm; room names stay strict.
pub fn check_display_name(s: &str) -> Result<(), NameError> {
    check_name(&s.replace('\u{200D}', ""))
}

/// Whether `c` is in the Unicode general category Cf (format characters: invisible,
/// they change how text around them is shown). The whole category as of Unicode 16;
/// std has no general-category lookup, and one table of 21 ranges is not worth a crate.
fn is_format_char(c: char) -> bool {
    const CF: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = u32::from(c);
    CF.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("kitchen"));
        assert!(valid_name("  kitchen  "), "joins trim the name");
        assert!(valid_name("Café Zürich"));
        assert!(valid_name("会議室"));
        assert!(!valid_name("   "));
        assert!(!valid_name("a\u{7}b"));
        assert!(!valid_name(&"x".repeat(MAX_NAME_CHARS + 1)));
        assert_eq!(check_name(" "), Err(NameError::Empty));
        assert_eq!(check_name("a\u{85}b"), Err(NameError::Control('\u{85}')));
    }

    /// Names that differ from a room's only by invisible characters are refused, so
    /// they cannot become a second, unprotected room that looks the same.
    #[test]
    fn emoji_sequences_are_fine_in_display_names_only() {
        let family = "dad 👨\u{200D}👩\u{200D}👧";
        assert_eq!(check_display_name(family), Ok(()));
        assert_eq!(check_name(family), Err(NameError::Invisible('\u{200D}')));
        assert!(
            check_display_name("a\u{200B}b").is_err(),
            "other invisibles stay out"
        );
    }

    #[test]
    fn invisible_characters_are_refused() {
        for c in [
            '\u{200B}',  // zero-width space
            '\u{200C}',  // zero-width non-joiner
            '\u{200D}',  // zero-width joiner
            '\u{200E}',  // left-to-right mark
            '\u{202E}',  // right-to-left override
            '\u{2060}',  // word joiner
            '\u{2066}',  // left-to-right isolate
            '\u{FEFF}',  // zero-width no-break space (BOM)
            '\u{00AD}',  // soft hyphen
            '\u{E0041}', // tag letter A
        ] {
            let name = format!("secret{c}");
            assert_eq!(check_name(&name), Err(NameError::Invisible(c)), "{c:?}");
            assert!(!valid_name(&format!("se{c}cret")), "{c:?}");
        }
        let e = check_name("secret\u{200B}").unwrap_err().to_string();
        assert!(e.contains("U+200B"), "{e}");
        assert_eq!(
            check_name("\u{1b}[31mred").unwrap_err().to_string(),
            "contains the control character U+001B"
        );
    }
}
