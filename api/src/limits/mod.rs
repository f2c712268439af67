//! Throttling, per client address and per account, in this process's memory.
//!
//! - Anonymous clicks (`POST /api/v1/clicks` without a token): a token bucket per address
//!   ([`ClickRate`], `FRAMECART_RATE_CLICKS`, default 50 a second with bursts of 200),
//!   kept by `governor`.
//! - Sign-in (`POST /api/v1/sessions`): failures per account and per address in any
//!   [`ATTEMPT_WINDOW`] ([`SigninRate`], `FRAMECART_RATE_SIGNIN`, default 10 and 30).
//!   Over either, every sign-in of that account, or from that address, is refused before
//!   its password is hashed, until the oldest counted failure is 15 minutes old.
//! - Registration (`POST /api/v1/users`): every registration that gets as far as hashing
//!   its password counts, successful or not, with the same numbers in windows of their
//!   own: at most 10 for one email address and 30 from one client address per 15 minutes.
//!
//! The address is the client address of the request: the peer, or the
//! right-most `X-Forwarded-For` hop that is not a trusted proxy.
//!
//! A refusal is a 429 `rate_limited` with `Retry-After` in seconds. The limits are per
//! process: behind a load balancer with n instances, a client gets up to n times as much.
//!
//! Memory stays bounded: a timer ([`Limits::housekeeping`]) drops the addresses whose
//! bucket is full again and the accounts and addresses with nothing in the window.

mod attempts;
pub mod rates;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

pub use attempts::{AccountKey, Attempt, Attempts, Over, Refusal};
pub use rates::{ClickRate, RateSyntaxError, SigninRate};

use crate::error::ApiError;

/// The window in which sign-in failures and registrations are counted.
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How often idle keys are dropped.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// The limits of one process.
pub struct Limits {
    clicks: Option<DefaultKeyedRateLimiter<IpAddr>>,
    attempts: Option<Attempts>,
}

impl Limits {
    pub fn new(clicks: ClickRate, signin: SigninRate) -> Self {
        let clicks = match clicks {
            ClickRate::Off => None,
            ClickRate::PerAddress { per_second, burst } => {
                Some(RateLimiter::dashmap(Quota::per_second(per_second).allow_burst(burst)))
            }
        };
        let attempts = match signin {
            SigninRate::Off => None,
            SigninRate::Limit { per_account, per_address } => {
                Some(Attempts::new(per_account.get() as usize, per_address.get() as usize, ATTEMPT_WINDOW))
            }
        };
        Self { clicks, attempts }
    }

    /// No limits at all.
    pub fn off() -> Self {
        Self::new(ClickRate::Off, SigninRate::Off)
    }

    /// Takes one anonymous click from the address's bucket (429 when it is empty).
    pub fn click(&self, address: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.clicks else { return Ok(()) };
        limiter.check_key(&address).map_err(|not_until| ApiError::RateLimited {
            message: "too many clicks from this address; send them again after the time in Retry-After".into(),
            retry_after: not_until.wait_time_from(limiter.clock().now()),
        })
    }

    /// Starts a sign-in (429 while the account or the address is over its failures). The
    /// attempt counts as a failure unless it is [`Self::forgive`]n. `None` when sign-ins
    /// are not limited.
    pub fn begin_sign_in(&self, account: AccountKey, address: IpAddr) -> Result<Option<Attempt>, ApiError> {
        let Some(attempts) = &self.attempts else { return Ok(None) };
        attempts.begin_sign_in(account, address, Instant::now()).map(Some).map_err(|refusal| {
            let whose = match refusal.over {
                Over::Account => "for this account",
                Over::Address => "from this address",
            };
            ApiError::RateLimited {
                message: format!("too many failed sign-ins {whose}; try again after the time in Retry-After"),
                retry_after: refusal.retry_after,
            }
        })
    }

    /// Takes back a sign-in that was not a failure.
    pub fn forgive(&self, attempt: Option<Attempt>) {
        if let (Some(attempts), Some(attempt)) = (&self.attempts, attempt) {
            attempts.forgive(attempt);
        }
    }

    /// Counts a registration (429 when the email address or the client address has had
    /// as many as it may).
    pub fn register(&self, account: AccountKey, address: IpAddr) -> Result<(), ApiError> {
        let Some(attempts) = &self.attempts else { return Ok(()) };
        attempts.register(account, address, Instant::now()).map_err(|refusal| {
            let whose = match refusal.over {
                Over::Account => "for this email address",
                Over::Address => "from this address",
            };
            ApiError::RateLimited {
                message: format!("too many registrations {whose}; try again after the time in Retry-After"),
                retry_after: refusal.retry_after,
            }
        })
    }

    /// Drops what no longer limits anything: addresses whose click bucket is full again,
    /// and accounts and addresses with no attempt in the window.
    pub fn purge(&self) {
        if let Some(clicks) = &self.clicks {
            clicks.retain_recent();
            clicks.shrink_to_fit();
        }
        if let Some(attempts) = &self.attempts {
            attempts.purge(Instant::now());
        }
    }

    /// Keys held (addresses and accounts), for tests.
    pub fn keys(&self) -> usize {
        self.clicks.as_ref().map_or(0, |c| c.len()) + self.attempts.as_ref().map_or(0, Attempts::len)
    }

    /// Purges every minute until `stop` is cancelled.
    pub async fn housekeeping(self: Arc<Self>, stop: CancellationToken) {
        if self.clicks.is_none() && self.attempts.is_none() {
            return;
        }
        let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => self.purge(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    #[test]
    fn an_address_gets_its_burst_then_a_429_with_retry_after() {
        let limits = Limits::new("1/s,3".parse().expect("rate"), SigninRate::Off);
        for _ in 0..3 {
            limits.click(ip(1)).expect("within the burst");
        }
        let refused = limits.click(ip(1)).expect_err("over the burst");
        let ApiError::RateLimited { retry_after, .. } = &refused else { panic!("{refused:?}") };
        assert!(*retry_after > Duration::ZERO && *retry_after <= Duration::from_secs(1), "{retry_after:?}");
        assert_eq!(refused.status_and_code(), (axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
        limits.click(ip(2)).expect("another address has its own bucket");
    }

    #[test]
    fn off_limits_nothing() {
        let limits = Limits::off();
        for _ in 0..10_000 {
            limits.click(ip(1)).expect("no limit");
        }
        let attempt = limits.begin_sign_in([0; 32], ip(1)).expect("no limit");
        assert!(attempt.is_none());
        assert_eq!(limits.keys(), 0);
    }

    #[test]
    fn idle_addresses_are_dropped() {
        let limits = Limits::new("1000/s,1".parse().expect("rate"), SigninRate::Off);
        for i in 0..100 {
            limits.click(ip(i)).expect("allowed");
        }
        assert_eq!(limits.keys(), 100);
        std::thread::sleep(Duration::from_millis(20));
        limits.purge();
        assert_eq!(limits.keys(), 0);
    }
}
