//! The pauses between failed reconnect passes: doubling, capped, and
//! jittered so that clients cut off together do not come back in step.

use super::Machine;

/// The pause after the first pass in which every server in the list failed,
/// before the next pass (ms). Each further failed pass doubles it, up to
/// [`RETRY_PAUSE_MAX_MS`], and every pause is drawn between half and all of
/// that, so that clients cut off together do not come back in step.
pub const RETRY_PAUSE_MS: u64 = 100;
/// The longest pause between passes (ms): short against any session
/// timeout, so a returning ensemble is found well before the session ends.
pub const RETRY_PAUSE_MAX_MS: u64 = 1_000;

impl Machine {
    /// Seeds the jitter of the pauses between reconnect passes (the shell
    /// draws it; without a seed every machine pauses alike).
    pub fn seed_jitter(&mut self, seed: u64) {
        self.jitter = seed | 1;
    }

    /// The pause before the next pass, after `passes_failed` failed ones:
    /// doubling, capped, and drawn between half and all of that.
    pub(super) fn retry_pause(&mut self) -> u64 {
        let full = (RETRY_PAUSE_MS << self.passes_failed.min(16)).min(RETRY_PAUSE_MAX_MS);
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        full / 2 + self.jitter % (full / 2 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{accepted, connected};
    use super::*;
    use crate::machine::Output;

    #[test]
    fn after_a_failed_pass_the_machine_pauses_then_starts_over() {
        let mut m = connected();
        m.connection_lost(1_000);
        m.take_outputs();
        for server in 0..3 {
            m.dial_failed(1_000, "refused");
            let out = m.take_outputs();
            if server < 2 {
                assert_eq!(out, [Output::Dial { server: server + 1 }]);
            } else {
                assert_eq!(out, []);
            }
        }
        let first = m.next_deadline().expect("a pause") - 1_000;
        assert!(
            (RETRY_PAUSE_MS / 2..=RETRY_PAUSE_MS).contains(&first),
            "{first}"
        );
        m.tick(1_000 + first);
        assert_eq!(m.take_outputs(), [Output::Dial { server: 0 }]);
    }

    /// Every server failing, pass after pass: the pauses.
    fn pauses(seed: Option<u64>, passes: usize) -> Vec<u64> {
        let mut m = connected();
        if let Some(seed) = seed {
            m.seed_jitter(seed);
        }
        let mut now = 1_000;
        m.connection_lost(now);
        m.take_outputs();
        let mut out = Vec::new();
        for _ in 0..passes {
            for _ in 0..3 {
                m.dial_failed(now, "refused");
            }
            m.take_outputs();
            let at = m.next_deadline().expect("a pause");
            out.push(at - now);
            now = at;
            m.tick(now);
            m.take_outputs();
        }
        out
    }

    #[test]
    fn pauses_between_failed_passes_double_up_to_a_cap_with_jitter() {
        // Five passes: the cap is reached, and the session (6 s) has not
        // expired yet.
        let a = pauses(Some(1), 5);
        for (n, pause) in a.iter().enumerate() {
            let full = (RETRY_PAUSE_MS << n).min(RETRY_PAUSE_MAX_MS);
            assert!(
                (full / 2..=full).contains(pause),
                "pass {n}: {pause} of {full}"
            );
        }
        assert!(a[4] > a[0], "{a:?}");
        // Clients seeded differently do not pause in step.
        assert_ne!(a, pauses(Some(2), 5));
        // A connection accepted again starts the doubling over.
        let mut m = connected();
        m.connection_lost(1_000);
        m.take_outputs();
        for _ in 0..3 {
            m.dial_failed(1_000, "refused");
        }
        let at = m.next_deadline().expect("a pause");
        m.tick(at);
        m.take_outputs();
        m.dialed(at);
        m.received(at, &accepted(0x55, 10));
        m.take_outputs();
        m.connection_lost(at + 10);
        m.take_outputs();
        for _ in 0..3 {
            m.dial_failed(at + 10, "refused");
        }
        let again = m.next_deadline().expect("a pause") - (at + 10);
        assert!(again <= RETRY_PAUSE_MS, "{again}");
    }
}
