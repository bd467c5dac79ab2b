//! Inhibition: a firing source alert mutes target alerts with the same `equal` labels.

use std::collections::BTreeMap;

use crate::config::InhibitRule;
use crate::error::Result;
use crate::matcher::Matchers;

/// A compiled inhibition rule.
#[derive(Debug, Clone)]
pub struct Inhibitor {
    source: Matchers,
    target: Matchers,
    equal: Vec<String>,
}

impl Inhibitor {
    /// Compiles a rule.
    pub fn new(r: &InhibitRule) -> Result<Self> {
        Ok(Self {
            source: r.source()?,
            target: r.target()?,
            equal: r.equal.clone(),
        })
    }
}

/// Whether `target` (fingerprint `fp`) is muted by one of the firing alerts in `firing`
/// under `rules`. Missing labels compare equal to missing labels, as in Alertmanager; an
/// alert never inhibits itself.
pub fn inhibited(
    rules: &[Inhibitor],
    firing: &[(u64, &BTreeMap<String, String>)],
    fp: u64,
    target: &BTreeMap<String, String>,
) -> bool {
    rules.iter().any(|r| {
        r.target.matches(target)
            && firing.iter().any(|(sfp, s)| {
                *sfp != fp
                    && r.source.matches(s)
                    && r.equal.iter().all(|l| s.get(l) == target.get(l))
            })
    })
}
