//! A circuit breaker: after `threshold` consecutive failures calls fail fast for `cooldown`;
//! then one probe is let through (half-open) and its outcome closes or reopens the circuit.
//!
//! Small and hand-written on purpose: it runs on tokio's clock (so tests use paused time),
//! exposes its state for a metric, and lets the health checker half-open it as soon as Gorse
//! reports ready.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

/// The externally visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// One probe may go through.
    HalfOpen,
    /// Calls fail fast.
    Open,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub const fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    state: Arc<Mutex<State>>,
    threshold: u32,
    cooldown: Duration,
    gauge: Gauge,
}

/// The circuit is open: don't call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open;

impl CircuitBreaker {
    /// A closed breaker reporting its state in `gauge`.
    pub fn new(threshold: u32, cooldown: Duration, gauge: Gauge) -> Self {
        gauge.set(BreakerState::Closed.as_gauge());
        Self {
            state: Arc::new(Mutex::new(State::Closed { failures: 0 })),
            threshold: threshold.max(1),
            cooldown,
            gauge,
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; the state is still usable.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = f(&mut state);
        self.gauge.set(visible(&state).as_gauge());
        result
    }

    /// Asks to make a call. `Err(Open)` means fail fast.
    pub fn acquire(&self) -> Result<(), Open> {
        self.with_state(|state| match state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if Instant::now() >= *until => {
                *state = State::HalfOpen { probing: true };
                Ok(())
            }
            State::Open { .. } | State::HalfOpen { probing: true } => Err(Open),
            State::HalfOpen { probing } => {
                *probing = true;
                Ok(())
            }
        })
    }

    /// Reports the outcome of an acquired call.
    pub fn record(&self, success: bool) {
        let (threshold, cooldown) = (self.threshold, self.cooldown);
        self.with_state(|state| {
            *state = match (&*state, success) {
                (_, true) => State::Closed { failures: 0 },
                (State::Closed { failures }, false) if failures + 1 < threshold => State::Closed {
                    failures: failures + 1,
                },
                (_, false) => State::Open {
                    until: Instant::now() + cooldown,
                },
            };
        });
    }

    /// Lets one probe through now (Gorse reported ready), if the circuit is open.
    pub fn half_open(&self) {
        self.with_state(|state| {
            if matches!(state, State::Open { .. }) {
                *state = State::HalfOpen { probing: false };
            }
        });
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.with_state(|state| {
            if let State::Open { until } = state
                && Instant::now() >= *until
            {
                return BreakerState::HalfOpen;
            }
            visible(state)
        })
    }
}

fn visible(state: &State) -> BreakerState {
    match state {
        State::Closed { .. } => BreakerState::Closed,
        State::Open { .. } => BreakerState::Open,
        State::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(3, Duration::from_secs(30), Gauge::default())
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_fails_fast() {
        let breaker = breaker();
        for _ in 0..2 {
            breaker.acquire().expect("closed");
            breaker.record(false);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.acquire().expect("still closed");
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.acquire(), Err(Open));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let breaker = breaker();
        for outcome in [false, false, true, false, false] {
            breaker.acquire().expect("closed");
            breaker.record(outcome);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cooldown_one_probe_decides() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.acquire().expect("closed");
            breaker.record(false);
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        breaker.acquire().expect("the probe");
        assert_eq!(breaker.acquire(), Err(Open), "only one probe at a time");
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Open, "failed probe reopens");

        tokio::time::advance(Duration::from_secs(31)).await;
        breaker.acquire().expect("the next probe");
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.acquire().expect("closed again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_report_half_opens_without_waiting_for_the_cooldown() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.acquire().expect("closed");
            breaker.record(false);
        }
        breaker.half_open();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.acquire().expect("probe allowed at once");
    }

    #[tokio::test(start_paused = true)]
    async fn the_gauge_follows_the_state() {
        let gauge = Gauge::default();
        let breaker = CircuitBreaker::new(1, Duration::from_secs(5), gauge.clone());
        assert_eq!(gauge.get(), 0);
        breaker.acquire().expect("closed");
        breaker.record(false);
        assert_eq!(gauge.get(), 2);
        breaker.half_open();
        assert_eq!(gauge.get(), 1);
    }
}
