//! The sampling rule of 6.0.2 (README "Reporting to CloudReactor", "Sampling"), in one place
//! for every front end.
//!
//! An execution is reported from its start with probability `api_managed_probability`; a
//! known Task Execution (CloudReactor started it) always is. One that was not reports
//! nothing when it succeeds, and its failure or timeout with
//! `api_failure_report_probability` / `api_timeout_report_probability`, as one creation that
//! carries the final status.

use crate::config::ApiConfig;
use crate::process::FinalStatus;

/// Whether an execution is reported from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Reported from the start.
    Reported,
    /// Not reported while it runs; its end maybe (`Sampling::end_reported`).
    SampledOut,
}

/// True with probability `p` (0 never, 1 always), given a uniform draw in `[0, 1)`.
fn with_probability(p: f64, draw: f64) -> bool {
    p >= 1.0 || (p > 0.0 && draw <= p)
}

impl Sampling {
    /// Decides for one execution; `known_execution` when its UUID was given.
    pub(crate) fn decide(api: &ApiConfig, known_execution: bool) -> Self {
        Self::decide_with(api.managed_probability, known_execution, fastrand::f64())
    }

    /// [`Sampling::decide`] with the draw given.
    pub(crate) fn decide_with(managed_probability: f64, known_execution: bool, draw: f64) -> Self {
        if known_execution || with_probability(managed_probability, draw) {
            Self::Reported
        } else {
            Self::SampledOut
        }
    }

    /// Whether the end of a sampled-out execution with `status` is reported.
    pub(crate) fn end_reported(api: &ApiConfig, status: FinalStatus) -> bool {
        Self::end_reported_with(api, status, fastrand::f64())
    }

    /// [`Sampling::end_reported`] with the draw given.
    pub(crate) fn end_reported_with(api: &ApiConfig, status: FinalStatus, draw: f64) -> bool {
        let p = match status {
            FinalStatus::Succeeded | FinalStatus::Stopped => return false,
            FinalStatus::TerminatedAfterTimeOut => api.timeout_report_probability,
            FinalStatus::Failed | FinalStatus::Aborted => api.failure_report_probability,
        };
        with_probability(p, draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        use Sampling::{Reported, SampledOut};
        assert_eq!(Sampling::decide_with(1.0, false, 0.999), Reported);
        assert_eq!(Sampling::decide_with(0.0, false, 0.0), SampledOut);
        assert_eq!(Sampling::decide_with(0.0, true, 0.5), Reported);
        assert_eq!(Sampling::decide_with(0.5, false, 0.4), Reported);
        assert_eq!(Sampling::decide_with(0.5, false, 0.6), SampledOut);
        let mut api = crate::config::from_pairs(&[]).api;
        api.timeout_report_probability = 0.0;
        assert!(!Sampling::end_reported_with(
            &api,
            FinalStatus::Succeeded,
            0.0
        ));
        assert!(Sampling::end_reported_with(&api, FinalStatus::Failed, 0.99));
        assert!(!Sampling::end_reported_with(
            &api,
            FinalStatus::TerminatedAfterTimeOut,
            0.0
        ));
    }
}
