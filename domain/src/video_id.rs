//! The YouTube video id: the key that joins a viewer's click to a merchant's upload.
//!
//! A canonical id is exactly 11 characters of `[A-Za-z0-9_-]`. Clients report it in
//! many spellings (a bare id, a watch URL, `youtu.be`, `/shorts/`, `/embed/`, `/live/`,
//! or the original system's `ID&list=…&index=37` query fragment); [`VideoId::parse`]
//! accepts all of them and yields the one canonical id, which is safe to use in a file
//! name and as a NATS subject token.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

/// Longest input we are willing to look at: a URL longer than this is not a video link.
const MAX_INPUT_LEN: usize = 2048;
const ID_LEN: usize = 11;

/// A canonical YouTube video id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VideoId(String);

/// Why a reported video id was refused. The message never repeats more than a short,
/// sanitised prefix of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoIdError {
    #[error("the video id is empty")]
    Empty,
    #[error("the video id is longer than {MAX_INPUT_LEN} characters")]
    TooLong,
    #[error("{0:?} is not a YouTube video id or video URL")]
    NotAVideoId(String),
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_canonical(s: &str) -> bool {
    s.len() == ID_LEN && s.chars().all(is_id_char)
}

/// Hosts that serve YouTube watch pages or embeds.
fn is_youtube_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    matches!(
        host.as_str(),
        "youtube.com"
            | "www.youtube.com"
            | "m.youtube.com"
            | "music.youtube.com"
            | "gaming.youtube.com"
            | "youtube-nocookie.com"
            | "www.youtube-nocookie.com"
            | "youtu.be"
    )
}

/// A short, printable excerpt of bad input for error messages.
fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(40).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

impl VideoId {
    /// Parses any accepted spelling of a video id into the canonical id.
    pub fn parse(input: &str) -> Result<Self, VideoIdError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(VideoIdError::Empty);
        }
        if s.len() > MAX_INPUT_LEN {
            return Err(VideoIdError::TooLong);
        }
        if is_canonical(s) {
            return Ok(Self(s.to_owned()));
        }
        Self::from_query_fragment(s).or_else(|| Self::from_url(s)).ok_or_else(|| VideoIdError::NotAVideoId(excerpt(s)))
    }

    /// The original system's form: the `v` parameter's value followed by the rest of the
    /// query string, e.g. `VESeA6leQuk&list=PL…&index=37`.
    fn from_query_fragment(s: &str) -> Option<Self> {
        let head = s.get(..ID_LEN)?;
        let rest = &s[ID_LEN..];
        (is_canonical(head) && (rest.starts_with('&') || rest.starts_with('#'))).then(|| Self(head.to_owned()))
    }

    fn from_url(s: &str) -> Option<Self> {
        let with_scheme;
        let s = if s.contains("://") {
            s
        } else {
            with_scheme = format!("https://{s}");
            &with_scheme
        };
        let url = Url::parse(s).ok()?;
        if !matches!(url.scheme(), "http" | "https") || !is_youtube_host(url.host_str()?) {
            return None;
        }
        let candidate = if url.host_str()?.eq_ignore_ascii_case("youtu.be") {
            url.path_segments()?.next().map(str::to_owned)
        } else {
            let mut segments = url.path_segments()?;
            match segments.next() {
                Some("watch") => url.query_pairs().find(|(k, _)| k == "v").map(|(_, v)| v.into_owned()),
                Some("shorts" | "embed" | "live" | "v" | "e") => segments.next().map(str::to_owned),
                _ => None,
            }
        }?;
        is_canonical(&candidate).then_some(Self(candidate))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VideoId({})", self.0)
    }
}

impl TryFrom<String> for VideoId {
    type Error = VideoIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        // Stored events hold canonical ids only: anything else is corrupt, not a spelling.
        if is_canonical(&value) { Ok(Self(value)) } else { Err(VideoIdError::NotAVideoId(excerpt(&value))) }
    }
}

impl From<VideoId> for String {
    fn from(id: VideoId) -> Self {
        id.0
    }
}

impl AsRef<str> for VideoId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "VESeA6leQuk";

    #[test]
    fn accepts_every_documented_spelling() {
        for input in [
            "VESeA6leQuk",
            "  VESeA6leQuk\n",
            "VESeA6leQuk&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=37",
            "VESeA6leQuk#t=10",
            "https://www.youtube.com/watch?v=VESeA6leQuk",
            "https://www.youtube.com/watch?list=PLx&v=VESeA6leQuk&index=37&t=5s&si=abc",
            "http://youtube.com/watch?v=VESeA6leQuk",
            "www.youtube.com/watch?v=VESeA6leQuk",
            "https://m.youtube.com/watch?v=VESeA6leQuk&feature=share",
            "https://music.youtube.com/watch?v=VESeA6leQuk",
            "https://youtu.be/VESeA6leQuk",
            "https://youtu.be/VESeA6leQuk?si=xyz&t=3",
            "youtu.be/VESeA6leQuk",
            "https://www.youtube.com/shorts/VESeA6leQuk",
            "https://www.youtube.com/embed/VESeA6leQuk?autoplay=1",
            "https://www.youtube-nocookie.com/embed/VESeA6leQuk",
            "https://www.youtube.com/live/VESeA6leQuk?feature=shared",
            "HTTPS://WWW.YOUTUBE.COM/watch?v=VESeA6leQuk",
        ] {
            assert_eq!(VideoId::parse(input).map(|v| v.to_string()), Ok(ID.to_owned()), "input {input:?}");
        }
    }

    #[test]
    fn refuses_paths_and_lookalikes() {
        for input in [
            "",
            "   ",
            "../../etc/pa",
            "../../../etc/passwd",
            "VESeA6leQu",
            "VESeA6leQukk",
            "VESeA6le/uk",
            "VESeA6le.uk",
            "VESeA6leQuk/../x",
            "https://evil.example/watch?v=VESeA6leQuk",
            "https://youtube.com.evil.example/watch?v=VESeA6leQuk",
            "https://www.youtube.com/watch?v=../../etc",
            "https://www.youtube.com/channel/VESeA6leQuk",
            "ftp://www.youtube.com/watch?v=VESeA6leQuk",
            "https://www.youtube.com/watch?v=VESeA6leQuk%2F",
            "javascript:alert(1)",
        ] {
            assert!(VideoId::parse(input).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn overly_long_input_is_refused_without_parsing() {
        let long = format!("https://www.youtube.com/watch?v={ID}&x={}", "a".repeat(3000));
        assert_eq!(VideoId::parse(&long), Err(VideoIdError::TooLong));
    }

    #[test]
    fn deserialising_accepts_only_canonical_ids() {
        let ok: VideoId = serde_json::from_str("\"VESeA6leQuk\"").expect("canonical");
        assert_eq!(ok.as_str(), ID);
        assert!(serde_json::from_str::<VideoId>("\"https://youtu.be/VESeA6leQuk\"").is_err());
    }

    fn any_id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{11}"
    }

    proptest! {
        #[test]
        fn every_url_form_yields_the_same_canonical_id(id in any_id(), extra in "x[a-z]{0,8}") {
            let forms = [
                id.clone(),
                format!("{id}&list={extra}&index=3"),
                format!("https://www.youtube.com/watch?v={id}&{extra}=1"),
                format!("https://www.youtube.com/watch?{extra}=1&v={id}"),
                format!("https://youtu.be/{id}?si={extra}"),
                format!("https://www.youtube.com/shorts/{id}"),
                format!("https://www.youtube.com/embed/{id}"),
                format!("https://www.youtube.com/live/{id}"),
            ];
            for form in forms {
                prop_assert_eq!(VideoId::parse(&form).map(String::from), Ok(id.clone()));
            }
        }

        #[test]
        fn a_parsed_id_is_always_a_safe_file_name(input in "\\PC{0,64}") {
            if let Ok(id) = VideoId::parse(&input) {
                prop_assert!(is_canonical(id.as_str()));
                prop_assert!(!id.as_str().contains('/') && !id.as_str().contains('.'));
            }
        }
    }
}
