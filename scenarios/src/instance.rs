//! What a scenario tells the driver about one instance: where it comes from
//! ([`At`]), how to start it ([`Start`]) and what to do to it while it runs
//! ([`Hook`]s); and the messages a scenario sends besides ([`Background`]).
//!
//! Every per-instance choice (fail or not, which scenario of a mix, payload
//! bytes) is drawn from [`draw`]: a pure function of the run's seed, the
//! agent and the sequence number, so the coordinator's audit can recompute
//! what any instance was meant to do from its id alone.

use std::time::Duration;

/// One instance of a run: the `seq`-th started by agent `agent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub agent: u32,
    pub seq: u64,
}

impl At {
    /// A uniform number in [0, 1) for this instance, `seed` and `salt`.
    pub fn draw(&self, seed: u64, salt: u64) -> f64 {
        draw(seed, self.agent, self.seq, salt)
    }
}

/// splitmix64 of the run's seed mixed with agent, sequence number and salt,
/// as a uniform number in [0, 1).
pub fn draw(seed: u64, agent: u32, seq: u64, salt: u64) -> f64 {
    (mix(seed ^ mix(u64::from(agent) ^ mix(seq ^ mix(salt)))) >> 11) as f64 / (1u64 << 53) as f64
}

/// The splitmix64 finaliser: a well-spread 64-bit hash of `x`.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How to start one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// The scenario it is tallied under (a mix names the chosen one).
    pub scenario: &'static str,
    pub orchestration: &'static str,
    pub input: String,
    /// What the driver does to the instance after it started.
    pub hooks: Vec<Hook>,
    /// Scenario facts to count once the start succeeded (payload bytes...).
    pub facts: Vec<(&'static str, u64)>,
}

impl Start {
    /// A start with no hooks and no facts.
    pub fn plain(scenario: &'static str, orchestration: &'static str, input: String) -> Self {
        Start { scenario, orchestration, input, hooks: Vec::new(), facts: Vec::new() }
    }
}

/// Something the driver does to a running instance, `after` its start call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub after: Duration,
    pub action: Action,
}

/// A client call on an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `Client::enqueue_event`; the driver prefixes `data` with the raise
    /// time ("<unix ms>|"), which the audit reads back from the history.
    Enqueue { queue: &'static str, data: String },
    /// `Client::cancel_instance`.
    Cancel { reason: String },
}

impl Action {
    /// The scenario fact a successful call counts.
    pub fn fact(&self) -> &'static str {
        match self {
            Action::Enqueue { .. } => "events_raised",
            Action::Cancel { .. } => "cancels_sent",
        }
    }
}

/// A message to another instance (a hot instance), sent by the background
/// sender rather than as a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub instance: String,
    pub action: Action,
    /// Fact to count when it was sent.
    pub fact: String,
}

/// An instance an agent starts before its load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    pub instance: String,
    pub start: Start,
    /// Counted (launched, followed to completion) by this agent; other
    /// agents start the same instance only to be sure it exists before they
    /// message it (a second start of an id is ignored).
    pub tracked: bool,
}

/// Work a scenario does besides starting instances: instances to start
/// before the load, messages at a rate during it, and final messages once
/// every earlier one has been sent.
pub trait Background: Send + std::fmt::Debug {
    /// The scenario its messages are tallied under.
    fn scenario(&self) -> &'static str;
    /// Instances to start before the load.
    fn setup(&self) -> Vec<Setup>;
    /// Messages per second during the load (this agent's share).
    fn rate_per_sec(&self) -> f64;
    /// The next message to send.
    fn next(&mut self) -> Message;
    /// A message from [`Self::next`] was sent (`ok`) or failed.
    fn sent(&mut self, message: &Message, ok: bool);
    /// A message sent (`ok`) only after failed attempts: the one that failed
    /// may have committed before its error, so it may have arrived twice.
    fn retried(&mut self, _message: &Message) {}
    /// The last messages, once every earlier one has been sent or failed.
    fn finish(&self) -> Vec<Message>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_and_depend_on_every_input() {
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|seq| draw(7, 1, seq, 3)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let base = draw(7, 1, 5, 3);
        assert_eq!(base, draw(7, 1, 5, 3));
        for other in [draw(8, 1, 5, 3), draw(7, 2, 5, 3), draw(7, 1, 6, 3), draw(7, 1, 5, 4)] {
            assert_ne!(base, other);
        }
    }
}
