//! Warnings and infos collected during evaluation, in Prometheus' wording.

/// Collected annotations, deduplicated, in insertion order.
#[derive(Debug, Default)]
pub(crate) struct Annotations {
    pub(crate) warnings: Vec<String>,
    pub(crate) infos: Vec<String>,
}

impl Annotations {
    /// Adds "PromQL warning: {msg}".
    pub(crate) fn warn(&mut self, msg: String) {
        let m = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&m) {
            self.warnings.push(m);
        }
    }

    /// Adds "PromQL info: {msg}".
    pub(crate) fn info(&mut self, msg: String) {
        let m = format!("PromQL info: {msg}");
        if !self.infos.contains(&m) {
            self.infos.push(m);
        }
    }
}

/// The info for `rate`/`increase` over a metric whose name does not look like a counter.
pub(crate) fn possible_non_counter(name: &str, pos: &str) -> String {
    format!(
        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}{pos}"
    )
}

/// Whether a metric name ends in a counter-like suffix.
pub(crate) fn is_counter_like(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}
