//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`, `/api/v1/metadata`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use ember_model::{METRIC_NAME, Matcher};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::Expr;

use crate::error::ApiError;
use crate::json;
use crate::params::{MAX_TIME_MS, MIN_TIME_MS, Params, time_param};
use crate::query::json_response;
use crate::{SharedState, Tenant};

/// Parses one `match[]` series selector into matcher sets (more than one with `or`).
pub fn parse_series_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = promql_parser::parser::parse(s)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("expected a series selector, got {s:?}"));
    };
    let convert = |list: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, String> {
        let mut out = Vec::with_capacity(list.len() + 1);
        for m in list {
            out.push(match &m.op {
                PMatchOp::Equal => Matcher::equal(&m.name, &m.value),
                PMatchOp::NotEqual => Matcher::not_equal(&m.name, &m.value),
                PMatchOp::Re(_) => Matcher::regex(&m.name, &m.value).map_err(|e| e.to_string())?,
                PMatchOp::NotRe(_) => {
                    Matcher::not_regex(&m.name, &m.value).map_err(|e| e.to_string())?
                }
            });
        }
        if let Some(name) = &vs.name
            && !out.iter().any(|m| m.name == METRIC_NAME)
        {
            out.push(Matcher::equal(METRIC_NAME, name));
        }
        Ok(out)
    };
    let mut sets = vec![convert(&vs.matchers.matchers)?];
    for group in &vs.matchers.or_matchers {
        sets.push(convert(group)?);
    }
    sets.retain(|s| !s.is_empty());
    Ok(sets)
}

fn matcher_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for s in p.get_all("match[]") {
        let parsed = parse_series_selector(s).map_err(|e| ApiError::invalid_param("match[]", e))?;
        if parsed
            .iter()
            .all(|set| set.iter().all(Matcher::matches_empty))
        {
            return Err(ApiError::bad_data(
                "match[] must contain at least one non-empty matcher",
            ));
        }
        sets.extend(parsed);
    }
    Ok(sets)
}

fn limit(p: &Params) -> Result<usize, ApiError> {
    match p.get_non_empty("limit") {
        None => Ok(0),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n as usize),
            Ok(_) => Err(ApiError::bad_data("limit must be non-negative")),
            Err(_) => Err(ApiError::bad_data("limit must be a number")),
        },
    }
}

fn range(p: &Params) -> Result<(i64, i64), ApiError> {
    Ok((
        time_param(p, "start", MIN_TIME_MS)?,
        time_param(p, "end", MAX_TIME_MS)?,
    ))
}

fn truncated<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, Vec<String>) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        (items, vec!["results truncated due to limit".to_string()])
    } else {
        (items, Vec::new())
    }
}

fn string_list(items: &[String], warnings: &[String]) -> Response {
    let mut data = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        json::write_str(&mut data, s);
    }
    data.push(']');
    json_response(json::success_envelope(&data, warnings, &[]))
}

/// `/api/v1/series`: label sets of series matching any `match[]`.
pub async fn series(
    State(state): State<SharedState>,
    tenant: Tenant,
    p: Params,
) -> Result<Response, ApiError> {
    let sets = matcher_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = range(&p)?;
    let found = state
        .storage
        .series(&tenant.0, &sets, start, end)
        .await
        .map_err(ApiError::from_storage)?;
    let (found, warnings) = truncated(found, limit(&p)?);
    let mut data = String::from("[");
    for (i, l) in found.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        json::write_labels(&mut data, l);
    }
    data.push(']');
    Ok(json_response(json::success_envelope(&data, &warnings, &[])))
}

/// `/api/v1/labels`: label names.
pub async fn label_names(
    State(state): State<SharedState>,
    tenant: Tenant,
    p: Params,
) -> Result<Response, ApiError> {
    let sets = matcher_sets(&p)?;
    let (start, end) = range(&p)?;
    let names = state
        .storage
        .label_names(&tenant.0, &sets, start, end)
        .await
        .map_err(ApiError::from_storage)?;
    let (names, warnings) = truncated(names, limit(&p)?);
    Ok(string_list(&names, &warnings))
}

/// Decodes Prometheus' `U__` escaping of UTF-8 label names in the URL path.
fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let hex: String = chars.by_ref().take_while(|c| *c != '_').collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => return name.to_string(),
        }
    }
    out
}

/// `/api/v1/label/<name>/values`: values of one label.
pub async fn label_values(
    State(state): State<SharedState>,
    tenant: Tenant,
    Path(params): Path<BTreeMap<String, String>>,
    p: Params,
) -> Result<Response, ApiError> {
    let raw = params.get("name").cloned().unwrap_or_default();
    let name = unescape_label_name(&raw);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {raw:?}")));
    }
    let sets = matcher_sets(&p)?;
    let (start, end) = range(&p)?;
    let values = state
        .storage
        .label_values(&tenant.0, &name, &sets, start, end)
        .await
        .map_err(ApiError::from_storage)?;
    let (values, warnings) = truncated(values, limit(&p)?);
    Ok(string_list(&values, &warnings))
}

/// `/api/v1/metadata`: metric metadata from remote write and scrapes.
pub async fn metadata(
    State(state): State<SharedState>,
    tenant: Tenant,
    p: Params,
) -> Result<Response, ApiError> {
    let parse_limit = |name: &str| -> Result<Option<usize>, ApiError> {
        match p.get_non_empty(name) {
            None => Ok(None),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n < 0 => Ok(None),
                Ok(n) => Ok(Some(n as usize)),
                Err(_) => Err(ApiError::bad_data(format!("{name} must be a number"))),
            },
        }
    };
    let limit = parse_limit("limit")?;
    let metric = p.get_non_empty("metric");
    let md = state
        .storage
        .metadata(&tenant.0, metric)
        .await
        .map_err(ApiError::from_storage)?;
    let mut out = serde_json::Map::new();
    for m in md {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let entry =
            serde_json::json!([{ "type": m.metric_type.as_str(), "help": m.help, "unit": m.unit }]);
        out.insert(m.metric_family_name, entry);
    }
    let data = serde_json::Value::Object(out).to_string();
    Ok(json_response(json::success_envelope(&data, &[], &[])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_escapes() {
        let sets = parse_series_selector("up{job=~\"a|b\"}").unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].len(), 2);
        assert!(parse_series_selector("sum(up)").is_err());
        assert_eq!(unescape_label_name("U__my_2e_label"), "my.label");
        assert_eq!(unescape_label_name("job"), "job");
    }
}
