//! A client-side budget of write requests: at most `requests` writes in any window of `per`,
//! so that a large publish paces itself below a service's documented throttling limits instead
//! of meeting a storm of `429 Too Many Requests` (which the retry layer still honours, should
//! another tool share the tenant's budget).
//!
//! Intune's documented limits for app writes are 100 requests per 20 seconds per app
//! registration and tenant, and 200 per 20 seconds per tenant ("Intune service limits" in
//! Microsoft Graph's service-specific throttling limits,
//! <https://learn.microsoft.com/graph/throttling-limits#intune-service-limits>); patchops's
//! default budget is 80 per 20 seconds, leaving room for the tenant's other tools.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The default Intune write budget: requests per window.
pub const INTUNE_WRITES: u32 = 80;
/// The default Intune write budget's window.
pub const INTUNE_WINDOW: Duration = Duration::from_secs(20);

/// At most `limit` writes in any window of `window`, shared by every client of one platform in
/// a process (the daemon's cycles included).
#[derive(Debug)]
pub struct WriteBudget {
    limit: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
    total: std::sync::atomic::AtomicU64,
}

impl WriteBudget {
    /// A budget of `limit` writes per `window` (at least one write).
    pub fn new(limit: u32, window: Duration) -> WriteBudget {
        WriteBudget {
            limit: (limit as usize).max(1),
            window,
            sent: Mutex::new(VecDeque::new()),
            total: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many writes went through the budget so far.
    pub fn writes(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The budget's writes per window and its window.
    pub fn rate(&self) -> (u32, Duration) {
        (self.limit as u32, self.window)
    }

    /// Waits until one more write fits the budget, then counts it.
    pub async fn acquire(&self) {
        // Bounded: each wait ends when the oldest write of the window leaves it.
        loop {
            let wait = {
                let Ok(mut sent) = self.sent.lock() else { return };
                let now = Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                    sent.pop_front();
                }
                if sent.len() < self.limit {
                    sent.push_back(now);
                    self.total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                match sent.front() {
                    Some(oldest) => (*oldest + self.window).saturating_duration_since(now),
                    None => Duration::ZERO,
                }
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// The budgets of a process, one per platform name: a budget outlives the clients (each
/// command or cycle connects afresh).
#[derive(Debug, Default)]
pub struct Budgets {
    by_platform: Mutex<std::collections::HashMap<String, Arc<WriteBudget>>>,
}

impl Budgets {
    /// `platform`'s budget of `limit` writes per `window`: the one already in use when its rate
    /// is the same, a new one when the fleet changed it.
    pub fn get(&self, platform: &str, limit: u32, window: Duration) -> Arc<WriteBudget> {
        let Ok(mut map) = self.by_platform.lock() else { return Arc::new(WriteBudget::new(limit, window)) };
        match map.get(platform) {
            Some(b) if b.rate() == (limit.max(1), window) => b.clone(),
            _ => {
                let b = Arc::new(WriteBudget::new(limit, window));
                map.insert(platform.to_string(), b.clone());
                b
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_beyond_the_budget_wait_for_the_window() {
        let budget = WriteBudget::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "three fit at once");
        budget.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(10), "the fourth waits for the first to leave the window");
        for _ in 0..3 {
            budget.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(20), "seven writes: never more than three per 10 s");
    }
}
