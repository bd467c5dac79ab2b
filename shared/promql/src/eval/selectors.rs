//! Instant and range selectors over fetched series, with lookback and staleness.

use ember_model::{Sample, is_stale_nan};
use promql_parser::parser::VectorSelector;

use std::borrow::Cow;
use std::collections::HashMap;

use ember_model::Series;

use super::{Evaluator, Grid, RangeSeries, SeriesData, at_ms, offset_ms};
use crate::PromqlError;
use crate::plan::selector_key;

impl<'a> Evaluator<'a> {
    /// Evaluates an instant-vector selector at every step: the latest sample in the left-open
    /// lookback window, unless it is a staleness marker. With `timestamps`, the value is the
    /// sample's timestamp in seconds (for `timestamp()`).
    pub(crate) fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        g: &Grid,
        timestamps: bool,
    ) -> Result<Vec<SeriesData>, PromqlError> {
        let data = self.data;
        let Some(series) = data.get(&selector_key(vs)) else {
            return Ok(Vec::new());
        };
        let off = offset_ms(&vs.offset);
        let at = at_ms(&vs.at, &self.ctx);
        let lookback = self.ctx.lookback;
        let n = g.len();
        let mut out = Vec::with_capacity(series.len());
        let mut total = 0usize;
        for s in series {
            let samples = &s.samples;
            let mut points = Vec::with_capacity(n.min(samples.len().max(1) * 4));
            let mut j = 0usize;
            for i in 0..n {
                let t = g.ts(i);
                let tt = at.unwrap_or(t) - off;
                while j < samples.len() && samples[j].t <= tt {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let smp = samples[j - 1];
                if smp.t <= tt - lookback || is_stale_nan(smp.v) {
                    continue;
                }
                let v = if timestamps {
                    smp.t as f64 / 1000.0
                } else {
                    smp.v
                };
                points.push(Sample::new(t, v));
            }
            if !points.is_empty() {
                total += points.len();
                out.push(SeriesData::new(s.labels.clone(), points));
            }
        }
        self.account(total)?;
        Ok(out)
    }

    /// The raw series of a matrix selector, staleness markers removed (borrowed when the
    /// series has none).
    pub(crate) fn matrix_series(
        &mut self,
        vs: &VectorSelector,
    ) -> Result<Vec<RangeSeries<'a>>, PromqlError> {
        let data: &'a HashMap<usize, Vec<Series>> = self.data;
        let Some(series) = data.get(&selector_key(vs)) else {
            return Ok(Vec::new());
        };
        let mut total = 0;
        let out: Vec<RangeSeries<'a>> = series
            .iter()
            .map(|s| {
                let points = if s.samples.iter().any(|p| is_stale_nan(p.v)) {
                    Cow::Owned(
                        s.samples
                            .iter()
                            .copied()
                            .filter(|p| !is_stale_nan(p.v))
                            .collect(),
                    )
                } else {
                    Cow::Borrowed(s.samples.as_slice())
                };
                total += points.len();
                RangeSeries {
                    labels: s.labels.clone(),
                    drop_name: false,
                    points,
                }
            })
            .collect();
        self.account(total)?;
        Ok(out)
    }
}
