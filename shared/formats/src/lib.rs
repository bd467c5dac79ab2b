//! Wire formats Ember speaks: Prometheus remote write 1.0/2.0 and the text
//! exposition formats (Prometheus text 0.0.4, OpenMetrics 1.0).

pub mod exposition;
pub mod remote;
