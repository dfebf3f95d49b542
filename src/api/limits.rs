//! Per-tenant rate limits: a token bucket per configured tenant (callers
//! whose tenant is not configured share one bucket, so that made-up tenant
//! names cannot grow the table).

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

/// The bucket of callers whose tenant is not in the tenant map.
const UNCONFIGURED: &str = "";

/// Token buckets by tenant.
pub struct RateLimiter {
    /// Tokens added per second; 0 turns the limit off.
    rate: f64,
    /// Most tokens a bucket holds.
    burst: f64,
    /// The tenants with a bucket of their own.
    tenants: BTreeSet<String>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` requests a second per tenant, `burst` at once.
    pub fn new(rate: u32, burst: u32, tenants: impl IntoIterator<Item = String>) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tenants: tenants.into_iter().collect(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `tenant`; how long to wait when there is none.
    pub fn check(&self, tenant: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let key = if self.tenants.contains(tenant) {
            tenant
        } else {
            UNCONFIGURED
        };
        let now = Instant::now();
        // Plain numbers: nothing a panic elsewhere could leave half-done.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_gets_its_burst_then_waits_and_others_are_not_affected() {
        let limiter = RateLimiter::new(1, 3, ["a".to_owned(), "b".to_owned()]);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limiter.check("b").is_ok(),
            "another tenant has its own bucket"
        );
        for _ in 0..3 {
            let _ = limiter.check("made-up-1");
        }
        assert!(
            limiter.check("made-up-2").is_err(),
            "unconfigured tenants share one bucket"
        );
        assert!(RateLimiter::new(0, 1, []).check("a").is_ok(), "0 is off");
    }
}
