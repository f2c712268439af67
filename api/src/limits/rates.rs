//! The two rate settings as typed values, parsed from their one-line forms. A bad value
//! is refused when the process starts, with the form it should have.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// `FRAMECART_RATE_CLICKS`: anonymous clicks per address, a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickRate {
    Off,
    /// `per_second` clicks a second on average, bursts of up to `burst`.
    PerAddress {
        per_second: NonZeroU32,
        burst: NonZeroU32,
    },
}

/// `FRAMECART_RATE_SIGNIN`: failed sign-ins allowed per [`super::ATTEMPT_WINDOW`], per
/// account and per address; registrations are counted in windows of their own with the
/// same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninRate {
    Off,
    Limit { per_account: NonZeroU32, per_address: NonZeroU32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateSyntaxError {
    #[error(
        "expected `N/s,BURST` (N clicks a second per address on average, bursts of up to BURST; \
         both whole numbers of at least 1, e.g. `50/s,200`) or `off`"
    )]
    Clicks,
    #[error(
        "expected `ACCOUNT,ADDRESS` (failed sign-ins allowed per 15 minutes per account and per \
         address; whole numbers of at least 1, e.g. `10,30`) or `off`"
    )]
    Signin,
}

fn count(s: &str) -> Option<NonZeroU32> {
    let s = s.trim();
    // `+7` and `07` parse as numbers; only plain digits are a count here.
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

impl FromStr for ClickRate {
    type Err = RateSyntaxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let (rate, burst) = s.split_once(',').ok_or(RateSyntaxError::Clicks)?;
        let per_second = rate.trim().strip_suffix("/s").and_then(count).ok_or(RateSyntaxError::Clicks)?;
        let burst = count(burst).ok_or(RateSyntaxError::Clicks)?;
        Ok(Self::PerAddress { per_second, burst })
    }
}

impl fmt::Display for ClickRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::PerAddress { per_second, burst } => write!(f, "{per_second}/s,{burst}"),
        }
    }
}

impl FromStr for SigninRate {
    type Err = RateSyntaxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let (account, address) = s.split_once(',').ok_or(RateSyntaxError::Signin)?;
        let per_account = count(account).ok_or(RateSyntaxError::Signin)?;
        let per_address = count(address).ok_or(RateSyntaxError::Signin)?;
        Ok(Self::Limit { per_account, per_address })
    }
}

impl fmt::Display for SigninRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Limit { per_account, per_address } => write!(f, "{per_account},{per_address}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).expect("non-zero")
    }

    #[test]
    fn click_rates_parse_and_print_back() {
        assert_eq!("50/s,200".parse(), Ok(ClickRate::PerAddress { per_second: n(50), burst: n(200) }));
        assert_eq!(" 1/s , 3 ".parse(), Ok(ClickRate::PerAddress { per_second: n(1), burst: n(3) }));
        assert_eq!("OFF".parse(), Ok(ClickRate::Off));
        assert_eq!("50/s,200".parse::<ClickRate>().map(|r| r.to_string()).as_deref(), Ok("50/s,200"));
        for bad in ["", "50", "50/s", "50,200", "0/s,200", "50/s,0", "-1/s,2", "+5/s,2", "5/m,2", "1.5/s,2", "5/s,2,3"]
        {
            assert_eq!(bad.parse::<ClickRate>(), Err(RateSyntaxError::Clicks), "{bad:?}");
        }
    }

    #[test]
    fn signin_rates_parse_and_print_back() {
        assert_eq!("10,30".parse(), Ok(SigninRate::Limit { per_account: n(10), per_address: n(30) }));
        assert_eq!("off".parse(), Ok(SigninRate::Off));
        assert_eq!("10,30".parse::<SigninRate>().map(|r| r.to_string()).as_deref(), Ok("10,30"));
        for bad in ["", "10", "0,30", "10,0", "10,x", "10/s,30", "10,30,1"] {
            assert_eq!(bad.parse::<SigninRate>(), Err(RateSyntaxError::Signin), "{bad:?}");
        }
    }
}
