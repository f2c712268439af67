//! Sign-in failures and registrations, counted per account and per address in a sliding
//! window: at most `limit` in any [`ATTEMPT_WINDOW`](super::ATTEMPT_WINDOW). The times of
//! the counted attempts are kept (at most `limit` per key), so a refusal can say exactly
//! when the oldest one leaves the window.
//!
//! A sign-in counts as a failure from the moment it starts, and a correct password takes
//! it back: concurrent attempts cannot all slip past the check before the first failure
//! is recorded, and a refused attempt never reaches Argon2.
//!
//! Memory: a key is kept while it has an attempt in the window, and every attempt that is
//! kept has cost a password hash; [`Attempts::purge`] (on a timer) drops keys whose
//! attempts have all left the window.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An account, by the SHA-256 of its email address (so an address that has no account
/// is counted too, and reveals nothing).
pub type AccountKey = [u8; 32];

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Account,
    Address,
}

/// A refused attempt: which limit, and how long until one more would be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub over: Over,
    pub retry_after: Duration,
}

/// A sign-in that has started and counts as a failure unless [`Attempts::forgive`] takes it
/// back.
#[derive(Debug)]
#[must_use = "a sign-in that succeeds must be forgiven"]
pub struct Attempt {
    account: AccountKey,
    address: IpAddr,
    at: Instant,
}

/// The times of the counted attempts of each key, oldest first.
struct Log<K> {
    keys: HashMap<K, VecDeque<Instant>>,
}

impl<K: Eq + Hash> Log<K> {
    fn new() -> Self {
        Self { keys: HashMap::new() }
    }

    /// How long until `key` may have one more attempt; `None` when it may now.
    fn wait(&mut self, key: &K, limit: usize, window: Duration, now: Instant) -> Option<Duration> {
        let times = self.keys.get_mut(key)?;
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
            times.pop_front();
        }
        let oldest = *times.front()?;
        (times.len() >= limit).then(|| (oldest + window).saturating_duration_since(now))
    }

    fn record(&mut self, key: K, now: Instant) {
        self.keys.entry(key).or_default().push_back(now);
    }

    fn remove(&mut self, key: &K, at: Instant) {
        if let Some(times) = self.keys.get_mut(key) {
            if let Some(i) = times.iter().rposition(|t| *t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    fn purge(&mut self, window: Duration, now: Instant) {
        self.keys.retain(|_, times| times.back().is_some_and(|t| now.saturating_duration_since(*t) < window));
        self.keys.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

struct State {
    sign_in_accounts: Log<AccountKey>,
    sign_in_addresses: Log<IpAddr>,
    registration_accounts: Log<AccountKey>,
    registration_addresses: Log<IpAddr>,
}

/// The sign-in and registration limits of one process.
pub struct Attempts {
    per_account: usize,
    per_address: usize,
    window: Duration,
    state: Mutex<State>,
}

impl Attempts {
    pub fn new(per_account: usize, per_address: usize, window: Duration) -> Self {
        let state = State {
            sign_in_accounts: Log::new(),
            sign_in_addresses: Log::new(),
            registration_accounts: Log::new(),
            registration_addresses: Log::new(),
        };
        Self { per_account, per_address, window, state: Mutex::new(state) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts, never a broken invariant.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a sign-in, counted as a failure of the account and the address; refused
    /// while either has used up its failures.
    pub fn begin_sign_in(&self, account: AccountKey, address: IpAddr, now: Instant) -> Result<Attempt, Refusal> {
        let mut state = self.state();
        let state = &mut *state;
        check(&mut state.sign_in_accounts, &account, self.per_account, self.window, now, Over::Account)?;
        check(&mut state.sign_in_addresses, &address, self.per_address, self.window, now, Over::Address)?;
        state.sign_in_accounts.record(account, now);
        state.sign_in_addresses.record(address, now);
        Ok(Attempt { account, address, at: now })
    }

    /// Takes back a sign-in that was not a failure (the password was right, or the
    /// attempt could not be decided because a service was down).
    pub fn forgive(&self, attempt: Attempt) {
        let mut state = self.state();
        state.sign_in_accounts.remove(&attempt.account, attempt.at);
        state.sign_in_addresses.remove(&attempt.address, attempt.at);
    }

    /// Counts a registration of the account from the address, unless either has had as
    /// many as it may in the window. Every registration counts, successful or not: each
    /// one costs a password hash.
    pub fn register(&self, account: AccountKey, address: IpAddr, now: Instant) -> Result<(), Refusal> {
        let mut state = self.state();
        let state = &mut *state;
        check(&mut state.registration_accounts, &account, self.per_account, self.window, now, Over::Account)?;
        check(&mut state.registration_addresses, &address, self.per_address, self.window, now, Over::Address)?;
        state.registration_accounts.record(account, now);
        state.registration_addresses.record(address, now);
        Ok(())
    }

    /// Drops the keys whose attempts have all left the window.
    pub fn purge(&self, now: Instant) {
        let mut state = self.state();
        state.sign_in_accounts.purge(self.window, now);
        state.sign_in_addresses.purge(self.window, now);
        state.registration_accounts.purge(self.window, now);
        state.registration_addresses.purge(self.window, now);
    }

    /// Keys held, for tests and metrics.
    pub fn len(&self) -> usize {
        let state = self.state();
        state.sign_in_accounts.len()
            + state.sign_in_addresses.len()
            + state.registration_accounts.len()
            + state.registration_addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check<K: Eq + Hash>(
    log: &mut Log<K>,
    key: &K,
    limit: usize,
    window: Duration,
    now: Instant,
    over: Over,
) -> Result<(), Refusal> {
    match log.wait(key, limit, window, now) {
        Some(retry_after) => Err(Refusal { over, retry_after }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_account_is_locked_after_its_failures_until_the_oldest_leaves_the_window() {
        let attempts = Attempts::new(3, 100, WINDOW);
        let start = Instant::now();
        for i in 0..3 {
            let _failed = attempts.begin_sign_in([1; 32], ip(i), start + Duration::from_secs(u64::from(i)));
        }
        let refused = attempts.begin_sign_in([1; 32], ip(9), start + Duration::from_secs(10)).expect_err("locked");
        assert_eq!(refused, Refusal { over: Over::Account, retry_after: Duration::from_secs(890) });
        // Another account from the same addresses is not locked.
        assert!(attempts.begin_sign_in([2; 32], ip(0), start + Duration::from_secs(10)).is_ok());
        // The first failure leaves the window: one more attempt.
        assert!(attempts.begin_sign_in([1; 32], ip(9), start + WINDOW).is_ok());
        assert!(attempts.begin_sign_in([1; 32], ip(9), start + WINDOW).is_err());
    }

    #[test]
    fn an_address_is_locked_after_its_failures_across_accounts() {
        let attempts = Attempts::new(100, 2, WINDOW);
        let now = Instant::now();
        let _a = attempts.begin_sign_in([1; 32], ip(1), now);
        let _b = attempts.begin_sign_in([2; 32], ip(1), now);
        let refused = attempts.begin_sign_in([3; 32], ip(1), now).expect_err("locked");
        assert_eq!(refused.over, Over::Address);
        assert!(attempts.begin_sign_in([3; 32], ip(2), now).is_ok());
    }

    #[test]
    fn a_forgiven_sign_in_is_not_a_failure() {
        let attempts = Attempts::new(2, 2, WINDOW);
        let now = Instant::now();
        for _ in 0..10 {
            let attempt = attempts.begin_sign_in([1; 32], ip(1), now).expect("allowed");
            attempts.forgive(attempt);
        }
        assert!(attempts.is_empty());
    }

    #[test]
    fn registrations_are_counted_apart_from_sign_ins() {
        let attempts = Attempts::new(1, 2, WINDOW);
        let now = Instant::now();
        assert!(attempts.register([1; 32], ip(1), now).is_ok());
        assert_eq!(attempts.register([1; 32], ip(1), now).map_err(|r| r.over), Err(Over::Account));
        assert!(attempts.register([2; 32], ip(1), now).is_ok());
        assert_eq!(attempts.register([3; 32], ip(1), now).map_err(|r| r.over), Err(Over::Address));
        assert!(attempts.begin_sign_in([1; 32], ip(1), now).is_ok());
    }

    #[test]
    fn purging_drops_only_keys_with_nothing_in_the_window() {
        let attempts = Attempts::new(5, 5, WINDOW);
        let start = Instant::now();
        let _old = attempts.begin_sign_in([1; 32], ip(1), start);
        let _new = attempts.begin_sign_in([2; 32], ip(2), start + Duration::from_secs(600));
        attempts.purge(start + WINDOW);
        assert_eq!(attempts.len(), 2, "the newer account and address stay");
        attempts.purge(start + WINDOW + Duration::from_secs(600));
        assert!(attempts.is_empty());
    }
}
