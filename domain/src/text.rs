//! Checks for text that a command stores.
//!
//! Every string that reaches an event passes one of these: Postgres refuses NUL in
//! `text` (a view would stop on it), and control characters in a name or an id are a
//! client bug or an attack, never data. Lengths are bounded in characters, so a
//! multi-byte script gets the same room as ASCII.

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("`{field}` contains a control character")]
    ControlCharacter { field: &'static str },
    #[error("`{field}` is at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("`{field}` must not be empty")]
    Empty { field: &'static str },
}

/// Longest value a client may put in a single-line field that has no tighter bound.
pub const MAX_LINE: usize = 2048;

/// True when `c` may appear in a multi-line text: every character but the control
/// characters, except line feed, carriage return and tab.
fn allowed_multiline(c: char) -> bool {
    !c.is_control() || matches!(c, '\n' | '\r' | '\t')
}

/// A one-line text: no control character at all, at most `max` characters.
pub fn line(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    if value.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter { field });
    }
    bounded(field, value, max)
}

/// A one-line text that must say something (not only spaces).
pub fn non_empty_line(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    if value.trim().is_empty() {
        return Err(TextError::Empty { field });
    }
    line(field, value, max)
}

/// A multi-line text (a description): line breaks and tabs allowed, no other control
/// character, at most `max` characters.
pub fn multiline(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    if !value.chars().all(allowed_multiline) {
        return Err(TextError::ControlCharacter { field });
    }
    bounded(field, value, max)
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    // `len()` counts bytes, at least the characters: only count when it could be over.
    if value.len() > max && value.chars().count() > max {
        return Err(TextError::TooLong { field, max });
    }
    Ok(())
}

/// The first character of `value` that no stored text may hold anywhere: NUL and the
/// other control characters except line feed, carriage return and tab. Used at the door,
/// on every string of a request, before a handler sees it.
pub fn forbidden_char(value: &str) -> Option<char> {
    value.chars().find(|c| !allowed_multiline(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_control_characters_are_refused() {
        assert_eq!(line("name", "a\0b", 10), Err(TextError::ControlCharacter { field: "name" }));
        assert_eq!(line("name", "a\nb", 10), Err(TextError::ControlCharacter { field: "name" }));
        assert_eq!(line("name", "a\u{85}b", 10), Err(TextError::ControlCharacter { field: "name" }));
        assert_eq!(multiline("d", "a\0b", 10), Err(TextError::ControlCharacter { field: "d" }));
        assert_eq!(multiline("d", "a\u{1b}[31m", 10), Err(TextError::ControlCharacter { field: "d" }));
        assert_eq!(multiline("d", "one\r\ntwo\tthree", 20), Ok(()));
        assert_eq!(forbidden_char("ok\ttext\n"), None);
        assert_eq!(forbidden_char("VESeA6leQuk&\0"), Some('\0'));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(line("name", &"é".repeat(10), 10), Ok(()));
        assert_eq!(line("name", &"é".repeat(11), 10), Err(TextError::TooLong { field: "name", max: 10 }));
        assert_eq!(non_empty_line("name", "   ", 10), Err(TextError::Empty { field: "name" }));
    }
}
