//! Rule evaluation: each rule's state — inactive, pending (the condition
//! holds, not yet for its `for`), firing — moved by each evaluation, with
//! hysteresis on the way out (the value must be past `resolve_threshold`
//! for `resolve_for`). Pure: times are milliseconds given by the caller,
//! windows are given as `Totals`, so it is tested without a clock and
//! resumed by a new leader from the alerts the store holds.

use super::rules::{NoData, Rule};
use super::window::Totals;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleState {
    Inactive,
    Pending {
        since_ms: i64,
    },
    Firing {
        since_ms: i64,
        /// When the value first came back past the resolve threshold.
        resolving_since_ms: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The condition holds; not yet for long enough.
    Pending {
        rule: usize,
        value: Option<f64>,
    },
    /// Pending that recovered before firing.
    Cancelled {
        rule: usize,
    },
    Firing {
        rule: usize,
        value: Option<f64>,
    },
    Resolved {
        rule: usize,
        value: Option<f64>,
    },
}

pub struct Evaluator {
    pub rules: Vec<Rule>,
    pub states: Vec<RuleState>,
    /// The last value of each rule (for /metrics and status).
    pub values: Vec<Option<f64>>,
}

impl Evaluator {
    pub fn new(rules: Vec<Rule>) -> Evaluator {
        let n = rules.len();
        Evaluator {
            rules,
            states: vec![RuleState::Inactive; n],
            values: vec![None; n],
        }
    }

    /// Resumes rule `name` in `state` (a new leader, from the store).
    pub fn resume(&mut self, name: &str, state: RuleState) {
        if let Some(i) = self.rules.iter().position(|r| r.name == name) {
            self.states[i] = state;
        }
    }

    /// One evaluation at `now_ms`; `window` gives the totals of a window.
    pub fn evaluate(
        &mut self,
        now_ms: i64,
        mut window: impl FnMut(Duration) -> Totals,
    ) -> Vec<Transition> {
        let mut cache: Vec<(Duration, Totals)> = Vec::new();
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            let totals = match cache.iter().find(|(w, _)| *w == rule.window) {
                Some((_, t)) => t.clone(),
                None => {
                    let t = window(rule.window);
                    cache.push((rule.window, t.clone()));
                    t
                }
            };
            let (value, samples) = rule.metric.value(&totals);
            let judged = match value {
                Some(v) if samples >= rule.min_samples => Some(v),
                _ => None,
            };
            self.values[i] = judged;
            // Whether the condition holds; `None`: keep the state.
            let holds = match judged {
                Some(v) => Some(rule.op.holds(v, rule.threshold)),
                None => match rule.no_data {
                    NoData::Ok => Some(false),
                    NoData::Alerting => Some(true),
                    NoData::Keep => None,
                },
            };
            let Some(holds) = holds else { continue };
            let for_ms = rule.for_duration.as_millis() as i64;
            let next = match (self.states[i], holds) {
                (RuleState::Inactive, true) if for_ms == 0 => {
                    out.push(Transition::Firing {
                        rule: i,
                        value: judged,
                    });
                    RuleState::Firing {
                        since_ms: now_ms,
                        resolving_since_ms: None,
                    }
                }
                (RuleState::Inactive, true) => {
                    out.push(Transition::Pending {
                        rule: i,
                        value: judged,
                    });
                    RuleState::Pending { since_ms: now_ms }
                }
                (RuleState::Inactive, false) => RuleState::Inactive,
                (RuleState::Pending { since_ms }, true) if now_ms - since_ms >= for_ms => {
                    out.push(Transition::Firing {
                        rule: i,
                        value: judged,
                    });
                    RuleState::Firing {
                        since_ms: now_ms,
                        resolving_since_ms: None,
                    }
                }
                (state @ RuleState::Pending { .. }, true) => state,
                (RuleState::Pending { .. }, false) => {
                    out.push(Transition::Cancelled { rule: i });
                    RuleState::Inactive
                }
                (
                    RuleState::Firing {
                        since_ms,
                        resolving_since_ms,
                    },
                    _,
                ) => {
                    // Hysteresis: bad while past the resolve threshold (or,
                    // without data, as no_data says).
                    let still_bad = match judged {
                        Some(v) => rule.still_bad(v),
                        None => holds,
                    };
                    if still_bad {
                        RuleState::Firing {
                            since_ms,
                            resolving_since_ms: None,
                        }
                    } else {
                        let since = resolving_since_ms.unwrap_or(now_ms);
                        if now_ms - since >= rule.resolve_for.as_millis() as i64 {
                            out.push(Transition::Resolved {
                                rule: i,
                                value: judged,
                            });
                            RuleState::Inactive
                        } else {
                            RuleState::Firing {
                                since_ms,
                                resolving_since_ms: Some(since),
                            }
                        }
                    }
                }
            };
            self.states[i] = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleConfig;
    use crate::monitor::auth_event::Kind;

    fn rule(for_s: f64, min: u64, no_data: &str, resolve: Option<f64>) -> Rule {
        Rule::from_config(
            &RuleConfig {
                name: "r".into(),
                metric: "error_rate".into(),
                op: ">".into(),
                threshold: 0.1,
                window: "1m".into(),
                for_seconds: for_s,
                resolve_threshold: resolve,
                resolve_for_seconds: 0.0,
                min_samples: min,
                no_data: no_data.into(),
                severity: "critical".into(),
                labels: Default::default(),
                annotations: Default::default(),
            },
            "monitoring.rules[0]",
            Duration::from_secs(1),
        )
        .unwrap()
    }

    fn totals(errors: u64, ok: u64) -> Totals {
        let mut t = Totals::empty(60);
        t.total[Kind::ServiceError as usize] = errors;
        t.total[Kind::AuthAttempt as usize] = ok;
        t.ok[Kind::AuthAttempt as usize] = ok;
        t
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let mut e = Evaluator::new(vec![rule(10.0, 1, "ok", None)]);
        assert_eq!(
            e.evaluate(0, |_| totals(5, 5)),
            vec![Transition::Pending {
                rule: 0,
                value: Some(0.5)
            }]
        );
        assert!(e.evaluate(5_000, |_| totals(5, 5)).is_empty());
        assert_eq!(
            e.evaluate(10_000, |_| totals(5, 5)),
            vec![Transition::Firing {
                rule: 0,
                value: Some(0.5)
            }]
        );
        assert!(
            e.evaluate(11_000, |_| totals(5, 5)).is_empty(),
            "no second firing"
        );
        assert_eq!(
            e.evaluate(12_000, |_| totals(0, 10)),
            vec![Transition::Resolved {
                rule: 0,
                value: Some(0.0)
            }]
        );
    }

    #[test]
    fn a_pending_rule_that_recovers_is_cancelled() {
        let mut e = Evaluator::new(vec![rule(10.0, 1, "ok", None)]);
        e.evaluate(0, |_| totals(5, 5));
        assert_eq!(
            e.evaluate(1_000, |_| totals(0, 10)),
            vec![Transition::Cancelled { rule: 0 }]
        );
    }

    #[test]
    fn one_failure_in_one_attempt_is_not_a_rate() {
        let mut e = Evaluator::new(vec![rule(0.0, 20, "ok", None)]);
        assert!(e.evaluate(0, |_| totals(1, 0)).is_empty());
        assert_eq!(
            e.evaluate(1_000, |_| totals(10, 10)),
            vec![Transition::Firing {
                rule: 0,
                value: Some(0.5)
            }]
        );
    }

    #[test]
    fn hysteresis_keeps_firing_until_past_the_resolve_threshold() {
        let mut e = Evaluator::new(vec![rule(0.0, 1, "ok", Some(0.02))]);
        e.evaluate(0, |_| totals(5, 5));
        assert!(
            e.evaluate(1_000, |_| totals(5, 95)).is_empty(),
            "0.05: below the threshold, above resolve"
        );
        assert_eq!(
            e.evaluate(2_000, |_| totals(1, 99)),
            vec![Transition::Resolved {
                rule: 0,
                value: Some(0.01)
            }]
        );
    }

    #[test]
    fn no_data_behaviours() {
        let mut alerting = Evaluator::new(vec![rule(0.0, 5, "alerting", None)]);
        assert!(matches!(
            alerting.evaluate(0, |_| totals(0, 0))[..],
            [Transition::Firing { value: None, .. }]
        ));
        let mut keep = Evaluator::new(vec![rule(0.0, 5, "keep", None)]);
        keep.evaluate(0, |_| totals(5, 5));
        assert!(
            keep.evaluate(1_000, |_| totals(0, 0)).is_empty(),
            "keeps firing without data"
        );
        let mut ok = Evaluator::new(vec![rule(0.0, 5, "ok", None)]);
        ok.evaluate(0, |_| totals(5, 5));
        assert!(matches!(
            ok.evaluate(1_000, |_| totals(0, 0))[..],
            [Transition::Resolved { .. }]
        ));
    }
}
