//! Money: integer minor units and an ISO 4217 currency, never floating point.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a currency is an ISO 4217 code of three upper-case letters, e.g. EUR")]
pub struct CurrencyError;

impl Currency {
    pub fn parse(s: &str) -> Result<Self, CurrencyError> {
        let bytes: [u8; 3] = s.as_bytes().try_into().map_err(|_| CurrencyError)?;
        if bytes.iter().all(u8::is_ascii_uppercase) { Ok(Self(bytes)) } else { Err(CurrencyError) }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

/// An amount in minor units (cents for EUR) of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// `self × quantity`, or `None` on overflow.
    pub fn times(&self, quantity: u32) -> Option<Self> {
        self.minor.checked_mul(i64::from(quantity)).map(|minor| Self { minor, ..*self })
    }

    /// The sum, or `None` on overflow or mixed currencies.
    pub fn plus(&self, other: &Self) -> Option<Self> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_add(other.minor))
            .flatten()
            .map(|minor| Self { minor, ..*self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert_eq!(Currency::parse("EUR").map(|c| c.to_string()), Ok("EUR".into()));
        for bad in ["eur", "EURO", "E1R", "", "€"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_is_exact_and_refuses_mixed_currencies() {
        let eur = Currency::parse("EUR").expect("EUR");
        let usd = Currency::parse("USD").expect("USD");
        assert_eq!(Money::new(1999, eur).times(3), Some(Money::new(5997, eur)));
        assert_eq!(Money::new(1, eur).plus(&Money::new(2, eur)), Some(Money::new(3, eur)));
        assert_eq!(Money::new(1, eur).plus(&Money::new(2, usd)), None);
        assert_eq!(Money::new(i64::MAX, eur).times(2), None);
    }
}
