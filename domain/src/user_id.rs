//! A user id as clients report it. It names a file (`{user_id}_{ip}_{video}.json`), so it
//! is a plain token: `[A-Za-z0-9_-]{1,64}`.

use std::fmt;

use serde::{Deserialize, Serialize};

const MAX_LEN: usize = 64;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a user id is 1 to {MAX_LEN} characters of letters, digits, '_' and '-'")]
pub struct UserIdError;

impl UserId {
    pub fn parse(input: &str) -> Result<Self, UserIdError> {
        let valid = (1..=MAX_LEN).contains(&input.len())
            && input.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid { Ok(Self(input.to_owned())) } else { Err(UserIdError) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

impl TryFrom<String> for UserId {
    type Error = UserIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_tokens_are_accepted() {
        for ok in ["u", "user_42", "A-b_C", &"x".repeat(64)] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn anything_that_could_reach_a_path_is_refused() {
        for bad in ["", "..", "a/b", "a.b", "a b", "ü", "None\0", &"x".repeat(65)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn accepted_ids_contain_no_separator(input in "\\PC{0,80}") {
            if let Ok(id) = UserId::parse(&input) {
                prop_assert!(!id.as_str().contains(['/', '.', '\\', '\0']));
            }
        }
    }
}
