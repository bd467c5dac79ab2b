//! Scrape exposition formats: the Prometheus text format 0.0.4 and OpenMetrics 1.0.
//!
//! The parser is hand-written and streaming: [`Parser::next_entry`] hands out one
//! [`Entry`] at a time whose names and label values borrow from the input whenever no
//! escape sequence has to be undone, so the hot path allocates nothing per sample.
//! [`parse_all`] is the convenience form that validates a whole page and returns owned
//! [`ParsedSample`]s built from `ember_model` types.
//!
//! Semantics follow Prometheus' `textparse` package:
//!
//! * **Content negotiation**: scrapers send [`SCRAPE_ACCEPT_HEADER`] (what Prometheus 3.x
//!   sends without protobuf); [`Format::from_content_type`] picks the parser from the
//!   response `Content-Type`. A missing or unknown type falls back to the caller's choice
//!   (Prometheus 3's `fallback_scrape_protocol`), by default the text format, which is
//!   what Prometheus 2.x did.
//! * **Timestamps**: integer milliseconds in the text format, float seconds in OpenMetrics
//!   (truncated to milliseconds, as Prometheus does).
//! * **Escaping**: label values undo `\\`, `\"` and `\n` (any other escaped character is
//!   kept as written); `# HELP` undoes `\\` and `\n` (OpenMetrics also `\"`). UTF-8 metric
//!   and label names may be quoted (`{"my.metric", "a.b"="c"}`), as Prometheus 3 accepts.
//! * **`_created`**: OpenMetrics `_created` samples are ordinary series named `<family>_created`,
//!   Prometheus' default when created-timestamp ingestion is off.
//! * **Exemplars**: OpenMetrics exemplars (`… # {trace_id="x"} 1.0 [ts]`) are parsed and
//!   validated and exposed on [`SampleEntry::exemplar`]; Ember's storage has no exemplar
//!   API, so the scraper **drops** them after parsing.
//! * **Histograms and summaries**: classic series (`_bucket`/`_sum`/`_count`, `quantile`).
//!   As in Prometheus 3, `le` values of histogram buckets and `quantile` values of summaries
//!   are normalised to their OpenMetrics float rendering (`le="1"` → `le="1.0"`), so text and
//!   OpenMetrics scrapes of the same target produce the same series.
//! * **`# EOF`**: mandatory in OpenMetrics; nothing may follow it.
//! * **Errors** carry the 1-based line number. Any error invalidates the whole page: callers
//!   must not store anything from a page that fails to parse ([`parse_all`] only returns
//!   samples when the whole page is valid).

mod float;
mod parser;
mod writer;

pub use float::format_openmetrics_float;
pub use parser::{Entry, ExemplarEntry, LabelPair, Parser, SampleEntry};
pub use writer::{family, sample};

use ember_model::{Labels, MetricMetadata, MetricType};

/// The `Accept` header a scraper sends: Prometheus 3.x's header for its default
/// `scrape_protocols` without the protobuf format Ember does not parse.
pub const SCRAPE_ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
application/openmetrics-text;version=0.0.1;q=0.4,\
text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

/// The `Accept` header Prometheus 2.42 sends (kept for reference and tests).
pub const PROMETHEUS_2_ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// An exposition format Ember can parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/plain; version=0.0.4` (and Prometheus 3's `version=1.0.0`).
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0` (and 0.0.1).
    OpenMetrics,
}

impl Format {
    /// Picks the parser for a response `Content-Type`. `None` or an unknown media type
    /// yields `fallback` (`None` then means "refuse", Prometheus 3's behaviour without
    /// `fallback_scrape_protocol`).
    pub fn from_content_type(
        content_type: Option<&str>,
        fallback: Option<Format>,
    ) -> Result<Format, ParseError> {
        let Some(ct) = content_type else {
            return fallback.ok_or_else(|| {
                ParseError::new(
                    0,
                    "response has no Content-Type and no fallback format is set",
                )
            });
        };
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Ok(Format::OpenMetrics)
        } else if media.eq_ignore_ascii_case("text/plain") {
            Ok(Format::PrometheusText)
        } else {
            fallback.ok_or_else(|| {
                ParseError::new(0, format!("received unsupported Content-Type {ct:?}"))
            })
        }
    }

    /// The canonical `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Parses a `fallback_scrape_protocol`/`scrape_protocols` name as Prometheus writes it.
    pub fn from_protocol_name(name: &str) -> Option<Format> {
        match name {
            "PrometheusText0.0.4" | "PrometheusText1.0.0" => Some(Format::PrometheusText),
            "OpenMetricsText0.0.1" | "OpenMetricsText1.0.0" => Some(Format::OpenMetrics),
            _ => None,
        }
    }
}

/// Why a page could not be parsed. The whole page is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number of the offending line (0 when not tied to a line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    /// An error at `line`.
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// Options that change what the parser emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Normalise `le`/`quantile` label values of classic histograms and summaries to the
    /// OpenMetrics float rendering (Prometheus 3 behaviour; default on).
    pub normalize_le_quantile: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            normalize_le_quantile: true,
        }
    }
}

/// One sample of a page, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The series, including `__name__`.
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
    /// The exemplar attached to the sample, if any (OpenMetrics only).
    pub exemplar: Option<Exemplar>,
}

/// An OpenMetrics exemplar, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The exemplar's labels (e.g. `trace_id`).
    pub labels: Labels,
    /// Its value.
    pub value: f64,
    /// Its timestamp in milliseconds, if given.
    pub timestamp_ms: Option<i64>,
}

/// A whole page, parsed and validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedPage {
    /// Every sample, in page order.
    pub samples: Vec<ParsedSample>,
    /// Metadata per metric family (TYPE, HELP and UNIT merged), in page order.
    pub metadata: Vec<MetricMetadata>,
}

/// Parses a whole page; any error invalidates all of it.
pub fn parse_all(input: &[u8], format: Format) -> Result<ParsedPage, ParseError> {
    parse_all_with(input, format, ParseOptions::default())
}

/// [`parse_all`] with explicit options.
pub fn parse_all_with(
    input: &[u8],
    format: Format,
    options: ParseOptions,
) -> Result<ParsedPage, ParseError> {
    let mut parser = Parser::with_options(input, format, options)?;
    let mut page = ParsedPage::default();
    let mut meta_index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    while let Some(entry) = parser.next_entry()? {
        match entry {
            Entry::Sample(s) => {
                let labels = s.to_labels();
                let exemplar = s.exemplar.as_ref().map(|e| Exemplar {
                    labels: Labels::from_pairs(
                        e.labels.iter().map(|(n, v)| (n.to_string(), v.to_string())),
                    ),
                    value: e.value,
                    timestamp_ms: e.timestamp_ms,
                });
                page.samples.push(ParsedSample {
                    labels,
                    value: s.value,
                    timestamp_ms: s.timestamp_ms,
                    exemplar,
                });
            }
            Entry::Type { name, metric_type } => {
                meta_slot(&mut page, &mut meta_index, &name).metric_type = metric_type
            }
            Entry::Help { name, help } => {
                meta_slot(&mut page, &mut meta_index, &name).help = help.into_owned()
            }
            Entry::Unit { name, unit } => {
                meta_slot(&mut page, &mut meta_index, &name).unit = unit.into_owned()
            }
        }
    }
    Ok(page)
}

fn meta_slot<'m>(
    page: &'m mut ParsedPage,
    index: &mut std::collections::HashMap<String, usize>,
    name: &str,
) -> &'m mut MetricMetadata {
    let i = *index.entry(name.to_string()).or_insert_with(|| {
        page.metadata.push(MetricMetadata {
            metric_family_name: name.to_string(),
            metric_type: MetricType::Unknown,
            help: String::new(),
            unit: String::new(),
        });
        page.metadata.len() - 1
    });
    &mut page.metadata[i]
}

#[cfg(test)]
mod tests;
