//! A password good enough to hash: 8 to 128 characters, not one of the common passwords
//! that are tried first, and at least 4 different characters. No entropy score: the rules
//! are few, stated, and the same for every account (the configured first admin included).
//!
//! The list (`common_passwords.txt`) is the "passwords" frequency list of zxcvbn 4.5.0,
//! taken from a public list of leaked passwords; see the file's header.

use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::OnceLock;

/// Shortest and longest password accepted, in characters (long inputs would make hashing
/// a weapon).
pub const PASSWORD_LENGTH: RangeInclusive<usize> = 8..=128;

/// Fewest different characters a password has (`aaaaaaaa` and eight spaces have one).
pub const MIN_DISTINCT_CHARS: usize = 4;

const COMMON: &str = include_str!("common_passwords.txt");

/// A password that passed the rules. It is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password has 8 to 128 characters")]
    Length,
    #[error("this password is one of the most common ones, which are tried first; choose another")]
    Common,
    #[error("a password has at least 4 different characters")]
    TooFewDistinct,
}

impl Password {
    pub fn parse(s: &str) -> Result<Self, PasswordError> {
        if !PASSWORD_LENGTH.contains(&s.chars().count()) {
            return Err(PasswordError::Length);
        }
        if is_common(s) {
            return Err(PasswordError::Common);
        }
        let distinct: HashSet<char> = s.chars().collect();
        if distinct.len() < MIN_DISTINCT_CHARS {
            return Err(PasswordError::TooFewDistinct);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(********)")
    }
}

/// True when `s`, whole and ignoring case, is on the common-password list.
pub fn is_common(s: &str) -> bool {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let list = LIST.get_or_init(|| COMMON.lines().filter(|l| !l.is_empty() && !l.starts_with("# ")).collect());
    list.contains(s.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_findings_passwords_are_refused() {
        assert_eq!(Password::parse("password"), Err(PasswordError::Common));
        assert_eq!(Password::parse("PASSWORD"), Err(PasswordError::Common));
        assert_eq!(Password::parse("PassWord"), Err(PasswordError::Common));
        assert_eq!(Password::parse("aaaaaaaa"), Err(PasswordError::TooFewDistinct));
        assert_eq!(Password::parse("        "), Err(PasswordError::TooFewDistinct));
        assert_eq!(Password::parse("abcabcabc"), Err(PasswordError::TooFewDistinct));
        assert_eq!(Password::parse("short"), Err(PasswordError::Length));
        assert_eq!(Password::parse(&"ab12".repeat(33)), Err(PasswordError::Length));
    }

    #[test]
    fn a_common_password_is_refused_only_whole() {
        assert!(is_common("sunshine") && is_common("iloveyou1"));
        assert!(is_common("Sunshine"));
        assert!(Password::parse("sunshine on the hills").is_ok());
        assert!(Password::parse(" sunshine").is_ok());
    }

    #[test]
    fn ordinary_passwords_pass() {
        for ok in ["a password for tests", "admin password for tests", "correct horse battery", "abcd1234x"] {
            assert_eq!(Password::parse(ok).map(|p| p.as_str().to_owned()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn the_list_is_lower_case_and_long_enough_to_matter() {
        let entries: Vec<&str> = COMMON.lines().filter(|l| !l.starts_with("# ")).collect();
        assert!(entries.len() > 5_000);
        assert!(entries.iter().all(|e| *e == e.to_lowercase() && PASSWORD_LENGTH.contains(&e.chars().count())));
    }

    #[test]
    fn a_password_is_never_printed() {
        let p = Password::parse("a password for tests").expect("valid");
        assert!(!format!("{p:?}").contains("tests"));
    }

    proptest! {
        #[test]
        fn a_password_with_fewer_than_four_distinct_chars_is_refused(
            chars in proptest::collection::vec(proptest::char::any(), 1..4),
            len in 8usize..64,
        ) {
            let s: String = (0..len).map(|i| chars[i % chars.len()]).collect();
            prop_assert!(Password::parse(&s).is_err());
        }
    }
}
