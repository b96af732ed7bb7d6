//! Identifiers and names.

/// The 12-character short form of a 64-hex ID (the whole string if shorter).
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Docker's rule for container and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`
/// (network names may be a single character too), at most 255 characters.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() <= 255 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// True if `s` is a lowercase hex string (an ID or an ID prefix).
pub fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("localnet"));
        assert!(is_valid_name("a"));
        assert!(is_valid_name("my_net-1.x"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(&"a".repeat(256)));
    }

    #[test]
    fn short() {
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }
}
