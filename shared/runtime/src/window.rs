//! The scheduled window: how long one invocation of a scheduled function keeps running
//! passes. EventBridge fires at most once a minute, so sub-minute scrape and rule
//! intervals loop inside one invocation, aligned to interval boundaries (the loop itself
//! is `ScrapeManager::run_pass` / `RuleManager::run_pass`); this decides when it stops:
//! when the next invocation would start, or at the Lambda deadline minus a safety margin,
//! whichever is first.

use std::time::{Duration, SystemTime};

/// Passes stop this long before the next invocation is due, so a boundary that falls on
/// the next invocation's start is left to it instead of being waited for here (Lambda
/// bills the wait). Schedule `cron(* * * * ? *)` so invocations start on the minute.
pub const NEXT_INVOCATION_GUARD: Duration = Duration::from_secs(1);

/// The window of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When this invocation was meant to start (the event's scheduled time, else now).
    pub start: SystemTime,
    /// When the next scheduled invocation starts (`start + period`).
    pub next_invocation: SystemTime,
    /// Passes must finish by then: `min(next_invocation - guard, deadline - margin)`, never
    /// before now.
    pub until: SystemTime,
}

/// Computes the window of an invocation at `now`.
///
/// A job with a 60 s interval is then handled once per invocation (the current
/// boundary), and a 15 s one four times; neither waits idle for the next minute.
/// - `scheduled`: the event's scheduled time (`time` of an EventBridge event). It is used
///   when it lies within one period before `now` (a late start still ends when the next
///   invocation begins); otherwise `now` is the start.
/// - `deadline`: the Lambda deadline (`None` outside Lambda: only the period limits).
/// - `period`: the schedule's rate (60 s for `rate(1 minute)`).
/// - `margin`: time kept free before the deadline (longest scrape timeout, state writes).
pub fn window(
    now: SystemTime,
    scheduled: Option<SystemTime>,
    deadline: Option<SystemTime>,
    period: Duration,
    margin: Duration,
) -> Window {
    let start = match scheduled {
        Some(s) if s <= now && now.duration_since(s).is_ok_and(|late| late < period) => s,
        // A scheduled time slightly in the future (clock skew) counts as now.
        _ => now,
    };
    let next_invocation = start + period;
    let guard = NEXT_INVOCATION_GUARD.min(period / 10);
    let mut until = next_invocation - guard;
    if let Some(d) = deadline {
        let limit = d.checked_sub(margin).unwrap_or(d);
        until = until.min(limit);
    }
    Window {
        start,
        next_invocation,
        until: until.max(now),
    }
}

/// The `time` field of an EventBridge / EventBridge Scheduler event (RFC 3339), if any.
pub fn scheduled_time(event: &serde_json::Value) -> Option<SystemTime> {
    let t = event.get("time")?.as_str()?;
    let dt = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    let ms = u64::try_from(dt.timestamp_millis()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Milliseconds since the epoch of a `SystemTime` (0 before the epoch).
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn next_invocation_bounds_the_window() {
        // On time, generous deadline: run until just before the next invocation.
        let w = window(
            at(0),
            Some(at(0)),
            Some(at(900)),
            MIN,
            Duration::from_secs(10),
        );
        assert_eq!(w.next_invocation, at(60));
        assert_eq!(w.until, at(59));
        // Started 2 s late: still stop before the next one starts.
        let w = window(
            at(2),
            Some(at(0)),
            Some(at(900)),
            MIN,
            Duration::from_secs(10),
        );
        assert_eq!(w.start, at(0));
        assert_eq!(w.until, at(59));
        // Short periods keep a proportional guard.
        let w = window(at(0), None, None, Duration::from_secs(5), Duration::ZERO);
        assert_eq!(w.until, at(0) + Duration::from_millis(4500));
    }

    #[test]
    fn deadline_minus_margin_bounds_the_window() {
        let w = window(
            at(0),
            Some(at(0)),
            Some(at(30)),
            MIN,
            Duration::from_secs(10),
        );
        assert_eq!(w.until, at(20));
        // Deadline already inside the margin: run no later than now (one pass at most).
        let w = window(at(25), None, Some(at(30)), MIN, Duration::from_secs(10));
        assert_eq!(w.until, at(25));
    }

    #[test]
    fn stale_or_missing_scheduled_time_means_now() {
        let w = window(at(200), Some(at(0)), None, MIN, Duration::ZERO);
        assert_eq!(w.start, at(200));
        assert_eq!(w.until, at(259));
        let w = window(at(200), None, None, MIN, Duration::ZERO);
        assert_eq!(w.until, at(259));
        let w = window(at(200), Some(at(205)), None, MIN, Duration::ZERO);
        assert_eq!(w.start, at(200));
    }

    #[test]
    fn event_time_parses() {
        let ev = serde_json::json!({"time": "2026-11-22T18:31:00Z", "source": "aws.scheduler"});
        let t = scheduled_time(&ev).unwrap();
        assert_eq!(epoch_ms(t), 1_795_372_260_000);
        assert_eq!(scheduled_time(&serde_json::json!({})), None);
        assert_eq!(
            scheduled_time(&serde_json::json!({"time": "yesterday"})),
            None
        );
    }
}
