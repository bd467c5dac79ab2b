//! The streaming parser shared by the text 0.0.4 and OpenMetrics 1.0 formats.

use std::borrow::Cow;

use ember_model::{Label, Labels, METRIC_NAME, MetricType};

use super::float::format_openmetrics_float;
use super::{Format, ParseError, ParseOptions};

/// A label name and value, borrowed from the page unless an escape had to be undone.
pub type LabelPair<'p> = (Cow<'p, str>, Cow<'p, str>);

/// One thing found on a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'p> {
    /// `# TYPE name type`.
    Type {
        /// The metric family name.
        name: Cow<'p, str>,
        /// The declared type (`untyped` is [`MetricType::Unknown`]).
        metric_type: MetricType,
    },
    /// `# HELP name text`, unescaped.
    Help {
        /// The metric family name.
        name: Cow<'p, str>,
        /// The help text.
        help: Cow<'p, str>,
    },
    /// `# UNIT name unit` (OpenMetrics only).
    Unit {
        /// The metric family name.
        name: Cow<'p, str>,
        /// The unit.
        unit: Cow<'p, str>,
    },
    /// A sample line.
    Sample(SampleEntry<'p>),
}

/// A sample line, borrowing from the page and the parser.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleEntry<'p> {
    /// The raw text identifying the series (metric name and label block as written);
    /// equal text means an equal series, so callers can cache per-series work under it.
    pub series: &'p str,
    /// The metric name.
    pub name: Cow<'p, str>,
    /// The labels in page order (never containing `__name__`; values may be empty).
    pub labels: &'p [LabelPair<'p>],
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The exemplar, if the line carries one (OpenMetrics).
    pub exemplar: Option<ExemplarEntry<'p>>,
    /// The 1-based line number.
    pub line: usize,
}

impl SampleEntry<'_> {
    /// The series as an owned, sorted label set including `__name__` (empty values dropped).
    pub fn to_labels(&self) -> Labels {
        let mut v: Vec<Label> = Vec::with_capacity(self.labels.len() + 1);
        v.push(Label::new(METRIC_NAME, self.name.as_ref()));
        for (n, val) in self.labels {
            if !val.is_empty() {
                v.push(Label::new(n.as_ref(), val.as_ref()));
            }
        }
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Labels::from_sorted_unchecked(v)
    }
}

/// An exemplar attached to a sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarEntry<'p> {
    /// The exemplar's labels.
    pub labels: &'p [LabelPair<'p>],
    /// Its value.
    pub value: f64,
    /// Its timestamp in milliseconds, if given.
    pub timestamp_ms: Option<i64>,
}

/// Streaming parser over one page. Call [`Parser::next_entry`] until it returns `Ok(None)`;
/// after an error the page is invalid and the parser must not be used further.
#[derive(Debug)]
pub struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    format: Format,
    options: ParseOptions,
    labels: Vec<LabelPair<'a>>,
    ex_labels: Vec<LabelPair<'a>>,
    family: Cow<'a, str>,
    family_type: MetricType,
    eof_seen: bool,
}

const NAME_START: u8 = 1;
const NAME_CONT: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONT: u8 = 8;

/// Character classes for metric and label names.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut v = 0;
        if alpha || b == b':' {
            v |= NAME_START | NAME_CONT;
        }
        if digit {
            v |= NAME_CONT | LABEL_CONT;
        }
        if alpha {
            v |= LABEL_START | LABEL_CONT;
        }
        t[c] = v;
        c += 1;
    }
    t
};

#[inline]
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl<'a> Parser<'a> {
    /// A parser over `input` with default options. Fails if the input is not UTF-8.
    pub fn new(input: &'a [u8], format: Format) -> Result<Self, ParseError> {
        Self::with_options(input, format, ParseOptions::default())
    }

    /// A parser with explicit options. Fails if the input is not UTF-8.
    pub fn with_options(
        input: &'a [u8],
        format: Format,
        options: ParseOptions,
    ) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(input).map_err(|e| {
            let line = input[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            ParseError::new(line, "invalid UTF-8")
        })?;
        Ok(Self {
            text,
            pos: 0,
            line: 0,
            format,
            options,
            labels: Vec::with_capacity(16),
            ex_labels: Vec::new(),
            family: Cow::Borrowed(""),
            family_type: MetricType::Unknown,
            eof_seen: false,
        })
    }

    /// The format being parsed.
    pub fn format(&self) -> Format {
        self.format
    }

    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, message)
    }

    /// The next entry, `Ok(None)` at the end of a valid page.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>, ParseError> {
        let bytes = self.text.as_bytes();
        loop {
            if self.pos >= bytes.len() {
                if self.format == Format::OpenMetrics && !self.eof_seen {
                    return Err(ParseError::new(
                        self.line.max(1),
                        "data does not end with # EOF",
                    ));
                }
                return Ok(None);
            }
            self.line += 1;
            if self.eof_seen {
                return Err(self.err("unexpected data after # EOF"));
            }
            if self.format == Format::PrometheusText {
                while self.pos < bytes.len() && is_blank(bytes[self.pos]) {
                    self.pos += 1;
                }
                if self.pos >= bytes.len() {
                    return Ok(None);
                }
            }
            match bytes[self.pos] {
                b'\n' => {
                    if self.format == Format::OpenMetrics {
                        return Err(self.err("empty line"));
                    }
                    self.pos += 1;
                }
                b'#' => {
                    if let Some(e) = self.comment()? {
                        return Ok(Some(e));
                    }
                }
                _ => return self.sample().map(Some),
            }
        }
    }

    fn line_end(&self, from: usize) -> usize {
        let bytes = self.text.as_bytes();
        bytes[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| from + i)
    }

    /// Handles a `#` line; returns metadata entries, `None` for plain comments and `# EOF`.
    fn comment(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        let text = self.text;
        let end = self.line_end(self.pos);
        let line = &text[self.pos..end];
        let next = if end < text.len() { end + 1 } else { end };
        let om = self.format == Format::OpenMetrics;
        if om && line == "# EOF" {
            self.eof_seen = true;
            self.pos = next;
            return Ok(None);
        }
        let rest = &line[1..];
        let (keyword, after) = if om {
            match rest.strip_prefix(' ') {
                Some(r) => r.split_once(' ').unwrap_or((r, "")),
                None => return Err(self.err("expected a space after #")),
            }
        } else {
            let r = rest.trim_start_matches([' ', '\t']);
            r.split_once([' ', '\t']).unwrap_or((r, ""))
        };
        let mut entry_start = end - after.len();
        if !om {
            entry_start = skip_blanks(text.as_bytes(), entry_start);
        }
        let entry = match keyword {
            "HELP" | "TYPE" | "UNIT" if keyword != "UNIT" || om => {
                let (name, name_end) = self.meta_name(entry_start, end)?;
                let mut p = name_end;
                let bytes = text.as_bytes();
                if p < end {
                    if !is_blank(bytes[p]) {
                        return Err(self.err(format!("invalid metric name in # {keyword}")));
                    }
                    p += 1;
                    if !om {
                        while p < end && is_blank(bytes[p]) {
                            p += 1;
                        }
                    }
                }
                let value = &text[p..end];
                match keyword {
                    "HELP" => Entry::Help {
                        name,
                        help: unescape_help(value, om),
                    },
                    "UNIT" => {
                        if !value.is_empty() && !name.ends_with(&format!("_{value}")) {
                            return Err(self.err(format!(
                                "unit {value:?} is not a suffix of metric {name:?}"
                            )));
                        }
                        Entry::Unit {
                            name,
                            unit: Cow::Borrowed(value),
                        }
                    }
                    _ => {
                        let t = value.trim_end_matches([' ', '\t']);
                        let metric_type = match (t, om) {
                            ("counter", _) => MetricType::Counter,
                            ("gauge", _) => MetricType::Gauge,
                            ("histogram", _) => MetricType::Histogram,
                            ("summary", _) => MetricType::Summary,
                            ("untyped", false) | ("unknown", true) => MetricType::Unknown,
                            ("gaugehistogram", true) => MetricType::Gaugehistogram,
                            ("stateset", true) => MetricType::Stateset,
                            ("info", true) => MetricType::Info,
                            _ => return Err(self.err(format!("invalid metric type {t:?}"))),
                        };
                        self.family = name.clone();
                        self.family_type = metric_type;
                        Entry::Type { name, metric_type }
                    }
                }
            }
            "EOF" if om => return Err(self.err("# EOF must be written exactly as \"# EOF\"")),
            _ if om => {
                return Err(self.err(format!(
                    "invalid comment: expected HELP, TYPE, UNIT or EOF, got {keyword:?}"
                )));
            }
            _ => {
                self.pos = next;
                return Ok(None);
            }
        };
        self.pos = next;
        Ok(Some(entry))
    }

    /// A metric name in a metadata line, plain or quoted; returns it and the index after it.
    fn meta_name(&self, start: usize, end: usize) -> Result<(Cow<'a, str>, usize), ParseError> {
        let bytes = self.text.as_bytes();
        if start < end && bytes[start] == b'"' {
            return self.quoted(start);
        }
        let e = scan_metric_name(bytes, start);
        if e == start {
            return Err(self.err("expected a metric name"));
        }
        Ok((Cow::Borrowed(&self.text[start..e]), e))
    }

    /// Parses a quoted string at `pos` (which holds `"`); returns it unescaped and the
    /// index after the closing quote.
    fn quoted(&self, pos: usize) -> Result<(Cow<'a, str>, usize), ParseError> {
        let text = self.text;
        let bytes = text.as_bytes();
        let start = pos + 1;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => return Ok((Cow::Borrowed(&text[start..i]), i + 1)),
                b'\\' => break,
                b'\n' => return Err(self.err("unterminated quoted string")),
                _ => i += 1,
            }
        }
        if i >= bytes.len() {
            return Err(self.err("unterminated quoted string"));
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&text[start..i]);
        let mut chunk = i;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    out.push_str(&text[chunk..i]);
                    return Ok((Cow::Owned(out), i + 1));
                }
                b'\\' => {
                    out.push_str(&text[chunk..i]);
                    match bytes.get(i + 1) {
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(b'n') => out.push('\n'),
                        Some(b'\n') | None => return Err(self.err("unterminated quoted string")),
                        Some(_) => out.push('\\'),
                    }
                    // An unknown escape keeps the escaped character: it is copied with the next chunk.
                    i += if matches!(bytes.get(i + 1), Some(b'\\' | b'"' | b'n')) {
                        2
                    } else {
                        1
                    };
                    chunk = i;
                }
                b'\n' => return Err(self.err("unterminated quoted string")),
                _ => i += 1,
            }
        }
        Err(self.err("unterminated quoted string"))
    }

    /// Parses a `{…}` label block at `pos` (holding `{`) into `self.labels` or
    /// `self.ex_labels`; may set the metric name from a quoted name. Returns the index after `}`.
    fn label_block(
        &mut self,
        mut pos: usize,
        exemplar: bool,
        name: &mut Option<Cow<'a, str>>,
    ) -> Result<usize, ParseError> {
        let text = self.text;
        let bytes = text.as_bytes();
        pos += 1;
        loop {
            while pos < bytes.len() && is_blank(bytes[pos]) {
                pos += 1;
            }
            let Some(&b) = bytes.get(pos) else {
                return Err(self.err("unexpected end of input in label set"));
            };
            if b == b'}' {
                return Ok(pos + 1);
            }
            let (lname, quoted) = if b == b'"' {
                let (s, np) = self.quoted(pos)?;
                pos = np;
                (s, true)
            } else {
                let e = scan_label_name(bytes, pos);
                if e == pos {
                    return Err(
                        self.err(format!("invalid label name at {:?}", snippet(&text[pos..])))
                    );
                }
                let s = Cow::Borrowed(&text[pos..e]);
                pos = e;
                (s, false)
            };
            while pos < bytes.len() && is_blank(bytes[pos]) {
                pos += 1;
            }
            if quoted && !exemplar && matches!(bytes.get(pos), Some(b',' | b'}')) {
                if name.is_some() {
                    return Err(self.err("metric name given twice"));
                }
                *name = Some(lname);
                if bytes[pos] == b',' {
                    pos += 1;
                }
                continue;
            }
            if bytes.get(pos) != Some(&b'=') {
                return Err(self.err(format!("expected '=' after label name {lname:?}")));
            }
            pos += 1;
            while pos < bytes.len() && is_blank(bytes[pos]) {
                pos += 1;
            }
            if bytes.get(pos) != Some(&b'"') {
                return Err(self.err(format!("expected quoted value for label {lname:?}")));
            }
            let (value, np) = self.quoted(pos)?;
            pos = np;
            let list = if exemplar {
                &self.ex_labels
            } else {
                &self.labels
            };
            if lname == METRIC_NAME || list.iter().any(|(n, _)| *n == lname) {
                return Err(self.err(format!("duplicate label name {lname:?}")));
            }
            if exemplar {
                &mut self.ex_labels
            } else {
                &mut self.labels
            }
            .push((lname, value));
            while pos < bytes.len() && is_blank(bytes[pos]) {
                pos += 1;
            }
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(b'}') => return Ok(pos + 1),
                _ => return Err(self.err("expected ',' or '}' in label set")),
            }
        }
    }

    fn sample(&mut self) -> Result<Entry<'_>, ParseError> {
        let text = self.text;
        let bytes = text.as_bytes();
        let om = self.format == Format::OpenMetrics;
        let start = self.pos;
        let mut pos = start;
        self.labels.clear();
        self.ex_labels.clear();
        let mut name: Option<Cow<'a, str>> = None;
        if bytes[pos] != b'{' {
            let e = scan_metric_name(bytes, pos);
            if e == pos {
                return Err(self.err(format!(
                    "invalid metric name at {:?}",
                    snippet(&text[pos..])
                )));
            }
            name = Some(Cow::Borrowed(&text[pos..e]));
            pos = e;
        }
        if bytes.get(pos) == Some(&b'{') {
            pos = self.label_block(pos, false, &mut name)?;
        }
        let series_end = pos;
        let Some(name) = name else {
            return Err(self.err("sample without metric name"));
        };
        // Value.
        let vstart = skip_blanks(bytes, pos);
        if vstart == pos {
            return Err(self.err(format!(
                "expected a space and a value after {:?}",
                &text[start..series_end]
            )));
        }
        let vend = scan_token(bytes, vstart);
        if vend == vstart {
            return Err(self.err(format!(
                "expected a value after {:?}",
                &text[start..series_end]
            )));
        }
        let value = parse_value(&text[vstart..vend])
            .ok_or_else(|| self.err(format!("invalid value {:?}", &text[vstart..vend])))?;
        pos = skip_blanks(bytes, vend);
        // Timestamp.
        let mut timestamp_ms = None;
        if pos < bytes.len() && bytes[pos] != b'\n' && bytes[pos] != b'#' {
            let tend = scan_token(bytes, pos);
            timestamp_ms = Some(self.parse_timestamp(&text[pos..tend])?);
            pos = skip_blanks(bytes, tend);
        }
        // Exemplar.
        let mut exemplar = None;
        if pos < bytes.len() && bytes[pos] == b'#' {
            if !om {
                return Err(self.err("unexpected '#' after sample (exemplars need OpenMetrics)"));
            }
            pos = skip_blanks(bytes, pos + 1);
            if bytes.get(pos) != Some(&b'{') {
                return Err(self.err("expected exemplar label set after '#'"));
            }
            let mut none = None;
            pos = self.label_block(pos, true, &mut none)?;
            let evs = skip_blanks(bytes, pos);
            let eve = scan_token(bytes, evs);
            if evs == pos || eve == evs {
                return Err(self.err("expected exemplar value"));
            }
            let ev = parse_value(&text[evs..eve])
                .ok_or_else(|| self.err(format!("invalid exemplar value {:?}", &text[evs..eve])))?;
            pos = skip_blanks(bytes, eve);
            let mut ets = None;
            if pos < bytes.len() && bytes[pos] != b'\n' {
                let tend = scan_token(bytes, pos);
                ets = Some(self.parse_timestamp(&text[pos..tend])?);
                pos = skip_blanks(bytes, tend);
            }
            let chars: usize = self
                .ex_labels
                .iter()
                .map(|(n, v)| n.chars().count() + v.chars().count())
                .sum();
            if chars > 128 {
                return Err(self.err("exemplar label set is longer than 128 UTF-8 characters"));
            }
            exemplar = Some((ev, ets));
        }
        match bytes.get(pos) {
            None => {}
            Some(b'\n') => pos += 1,
            Some(_) => {
                return Err(self.err(format!(
                    "unexpected text after sample: {:?}",
                    snippet(&text[pos..])
                )));
            }
        }
        self.pos = pos;
        if self.options.normalize_le_quantile {
            self.normalize(&name);
        }
        Ok(Entry::Sample(SampleEntry {
            series: &text[start..series_end],
            name,
            labels: &self.labels,
            value,
            timestamp_ms,
            exemplar: exemplar.map(|(value, timestamp_ms)| ExemplarEntry {
                labels: &self.ex_labels,
                value,
                timestamp_ms,
            }),
            line: self.line,
        }))
    }

    /// Rewrites `le`/`quantile` values into their canonical float rendering.
    fn normalize(&mut self, name: &str) {
        let key = match self.family_type {
            MetricType::Histogram | MetricType::Gaugehistogram => "le",
            MetricType::Summary => "quantile",
            _ => return,
        };
        if !name.starts_with(self.family.as_ref()) {
            return;
        }
        for (n, v) in self.labels.iter_mut() {
            if n == key {
                if let Some(f) = parse_value(v) {
                    let canon = format_openmetrics_float(f);
                    if canon != *v {
                        *v = Cow::Owned(canon);
                    }
                }
                break;
            }
        }
    }

    fn parse_timestamp(&self, tok: &str) -> Result<i64, ParseError> {
        match self.format {
            Format::PrometheusText => tok
                .parse::<i64>()
                .map_err(|_| self.err(format!("invalid timestamp {tok:?}"))),
            Format::OpenMetrics => {
                let secs: f64 = tok
                    .parse()
                    .map_err(|_| self.err(format!("invalid timestamp {tok:?}")))?;
                if !secs.is_finite() {
                    return Err(self.err(format!("invalid timestamp {tok:?}")));
                }
                Ok((secs * 1000.0) as i64)
            }
        }
    }
}

#[inline]
fn scan_metric_name(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if i < bytes.len() && CLASS[bytes[i] as usize] & NAME_START != 0 {
        i += 1;
        while i < bytes.len() && CLASS[bytes[i] as usize] & NAME_CONT != 0 {
            i += 1;
        }
    }
    i
}

#[inline]
fn scan_label_name(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if i < bytes.len() && CLASS[bytes[i] as usize] & LABEL_START != 0 {
        i += 1;
        while i < bytes.len() && CLASS[bytes[i] as usize] & LABEL_CONT != 0 {
            i += 1;
        }
    }
    i
}

#[inline]
fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_blank(bytes[i]) {
        i += 1;
    }
    i
}

#[inline]
fn scan_token(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && !is_blank(bytes[i]) && bytes[i] != b'\n' {
        i += 1;
    }
    i
}

/// Parses a sample value like Go's `strconv.ParseFloat` (incl. `NaN`, `+Inf`, `-Inf`).
#[inline]
fn parse_value(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    // Fast path: short unsigned or negative integers are exact in f64.
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let mut n: u64 = 0;
        for &d in digits {
            n = n * 10 + u64::from(d - b'0');
        }
        let f = n as f64;
        return Some(if neg { -f } else { f });
    }
    // Rust's grammar is Go's minus hex floats and underscores; it also takes `inf`/`nan`
    // in any case, with optional sign, as Go does.
    s.parse::<f64>().ok()
}

fn unescape_help(s: &str, om: bool) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if om => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

fn snippet(s: &str) -> &str {
    let end = s.find('\n').unwrap_or(s.len());
    let line = &s[..end];
    match line.char_indices().nth(40) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}
