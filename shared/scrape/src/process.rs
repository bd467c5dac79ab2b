//! Turning a scraped page into series: target labels, `honor_labels`, metric relabeling,
//! external labels, limits and `honor_timestamps`, with a per-target cache so a series
//! seen before costs one hash lookup instead of a relabeling run.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use ember_config::relabel::{self, RelabelConfig};
use ember_formats::exposition::{Entry, Format, Parser};
use ember_model::{Labels, MetricMetadata, MetricType, Sample, Series};

use crate::ScrapeError;

/// Per-job settings the processing needs.
#[derive(Debug, Clone, Default)]
pub struct ProcessSettings {
    /// `honor_labels`.
    pub honor_labels: bool,
    /// `honor_timestamps`.
    pub honor_timestamps: bool,
    /// `track_timestamps_staleness`.
    pub track_timestamps_staleness: bool,
    /// `metric_relabel_configs`.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// `global.external_labels` (series labels win on conflict).
    pub external_labels: Vec<(String, String)>,
    /// `sample_limit` (0 = none).
    pub sample_limit: u64,
    /// `label_limit` (0 = none).
    pub label_limit: u64,
    /// `label_name_length_limit` (0 = none).
    pub label_name_length_limit: u64,
    /// `label_value_length_limit` (0 = none).
    pub label_value_length_limit: u64,
}

#[derive(Debug)]
struct CacheEntry {
    /// Final labels and their hash, or `None` when metric relabeling drops the series.
    out: Option<(Labels, u64)>,
    seen: u64,
}

/// Raw series text → final labels, for one target.
#[derive(Debug, Default)]
pub struct SeriesCache {
    map: HashMap<String, CacheEntry>,
    iteration: u64,
}

impl SeriesCache {
    /// Number of cached series.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A page turned into series.
#[derive(Debug, Default)]
pub struct Processed {
    /// Series with their sample(s), deduplicated.
    pub series: Vec<Series>,
    /// Indexes into `series` of the series that take part in staleness tracking
    /// (those without an honoured explicit timestamp, unless `track_timestamps_staleness`).
    pub tracked: Vec<usize>,
    /// Samples on the page (`scrape_samples_scraped`).
    pub samples_scraped: usize,
    /// Samples kept after metric relabeling (`scrape_samples_post_metric_relabeling`).
    pub samples_post_relabel: usize,
    /// Metadata of the page's metric families.
    pub metadata: Vec<MetricMetadata>,
    /// Hash of the metadata, to store it only when it changes.
    pub metadata_hash: u64,
    /// Exemplars parsed and dropped (Ember's storage has no exemplar API).
    pub exemplars_dropped: usize,
}

/// Parses and processes a page. Any error (parse, limits) fails the whole scrape.
pub fn process(
    body: &[u8],
    format: Format,
    t: i64,
    target_labels: &Labels,
    settings: &ProcessSettings,
    cache: &mut SeriesCache,
) -> Result<Processed, ScrapeError> {
    cache.iteration += 1;
    let iteration = cache.iteration;
    let mut parser = Parser::new(body, format).map_err(|e| ScrapeError::Parse(e.to_string()))?;
    let mut out = Processed::default();
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(cache.map.len());
    let mut meta: Vec<MetricMetadata> = Vec::new();
    let mut meta_pos: HashMap<String, usize> = HashMap::new();
    loop {
        let entry = match parser.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => return Err(ScrapeError::Parse(e.to_string())),
        };
        let s = match entry {
            Entry::Sample(s) => s,
            Entry::Type { name, metric_type } => {
                meta_entry(&mut meta, &mut meta_pos, &name).metric_type = metric_type;
                continue;
            }
            Entry::Help { name, help } => {
                meta_entry(&mut meta, &mut meta_pos, &name).help = help.into_owned();
                continue;
            }
            Entry::Unit { name, unit } => {
                meta_entry(&mut meta, &mut meta_pos, &name).unit = unit.into_owned();
                continue;
            }
        };
        out.samples_scraped += 1;
        if s.exemplar.is_some() {
            out.exemplars_dropped += 1;
        }
        let resolved = match cache.map.get_mut(s.series) {
            Some(e) => {
                e.seen = iteration;
                e.out.clone()
            }
            None => {
                let labels = final_labels(s.to_labels(), target_labels, settings)
                    .map_err(|m| ScrapeError::Limit(format!("{m} (line {})", s.line)))?;
                let out_entry = labels.map(|l| {
                    let h = l.stable_hash();
                    (l, h)
                });
                cache.map.insert(
                    s.series.to_string(),
                    CacheEntry {
                        out: out_entry.clone(),
                        seen: iteration,
                    },
                );
                out_entry
            }
        };
        let Some((labels, hash)) = resolved else {
            continue;
        };
        let explicit = settings.honor_timestamps && s.timestamp_ms.is_some();
        let ts = if explicit {
            s.timestamp_ms.unwrap_or(t)
        } else {
            t
        };
        match index.get(&hash) {
            Some(&i) => {
                // The same series twice: keep the first value per timestamp, as Prometheus does.
                let series = &mut out.series[i];
                if series.samples.iter().all(|x| x.t != ts) {
                    series.samples.push(Sample::new(ts, s.value));
                    out.samples_post_relabel += 1;
                }
            }
            None => {
                index.insert(hash, out.series.len());
                if !explicit || settings.track_timestamps_staleness {
                    out.tracked.push(out.series.len());
                }
                out.series
                    .push(Series::new(labels, vec![Sample::new(ts, s.value)]));
                out.samples_post_relabel += 1;
            }
        }
    }
    if settings.sample_limit > 0 && out.samples_post_relabel as u64 > settings.sample_limit {
        return Err(ScrapeError::Limit(format!(
            "sample limit exceeded: {} samples, limit {}",
            out.samples_post_relabel, settings.sample_limit
        )));
    }
    for s in &mut out.series {
        if s.samples.len() > 1 {
            s.sort_and_dedup();
        }
    }
    // Forget cached series not seen for a while, so churn does not grow the cache forever.
    if cache.map.len() > 2 * out.samples_scraped + 1024 {
        cache.map.retain(|_, e| e.seen + 2 >= iteration);
    }
    let mut h = DefaultHasher::new();
    for m in &meta {
        m.hash(&mut h);
    }
    out.metadata_hash = h.finish();
    out.metadata = meta;
    Ok(out)
}

fn meta_entry<'m>(
    meta: &'m mut Vec<MetricMetadata>,
    pos: &mut HashMap<String, usize>,
    name: &str,
) -> &'m mut MetricMetadata {
    let i = *pos.entry(name.to_string()).or_insert_with(|| {
        meta.push(MetricMetadata {
            metric_family_name: name.to_string(),
            metric_type: MetricType::Unknown,
            help: String::new(),
            unit: String::new(),
        });
        meta.len() - 1
    });
    &mut meta[i]
}

/// Merges target labels into a scraped series, applies metric relabeling, external
/// labels and the label limits. `Ok(None)` = dropped by relabeling.
pub fn final_labels(
    sample: Labels,
    target: &Labels,
    settings: &ProcessSettings,
) -> Result<Option<Labels>, String> {
    let mut lb = sample.to_builder();
    for l in target.iter() {
        if settings.honor_labels {
            if lb.get(&l.name).is_none() {
                lb.set(l.name.as_str(), l.value.as_str());
            }
        } else {
            if let Some(existing) = lb.get(&l.name).map(str::to_string) {
                let mut name = format!("exported_{}", l.name);
                while lb.get(&name).is_some() {
                    name = format!("exported_{name}");
                }
                lb.set(name, existing);
            }
            lb.set(l.name.as_str(), l.value.as_str());
        }
    }
    let merged = lb.build();
    let Some(relabeled) = relabel::process(&merged, &settings.metric_relabel_configs) else {
        return Ok(None);
    };
    let labels = if settings.external_labels.is_empty() {
        relabeled
    } else {
        let mut lb = relabeled.to_builder();
        for (k, v) in &settings.external_labels {
            if lb.get(k).is_none() {
                lb.set(k.as_str(), v.as_str());
            }
        }
        lb.build()
    };
    if labels.metric_name().is_none() {
        return Err(format!(
            "series {labels} has no metric name after relabeling"
        ));
    }
    if settings.label_limit > 0 && labels.len() as u64 > settings.label_limit {
        return Err(format!(
            "label_limit exceeded: {} labels, limit {} ({labels})",
            labels.len(),
            settings.label_limit
        ));
    }
    for l in labels.iter() {
        if settings.label_name_length_limit > 0
            && l.name.len() as u64 > settings.label_name_length_limit
        {
            return Err(format!(
                "label_name_length_limit exceeded: label name {:?}",
                l.name
            ));
        }
        if settings.label_value_length_limit > 0
            && l.value.len() as u64 > settings.label_value_length_limit
        {
            return Err(format!(
                "label_value_length_limit exceeded: label {:?}",
                l.name
            ));
        }
    }
    Ok(Some(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Labels {
        Labels::from_pairs([("job", "app"), ("instance", "127.0.0.1:1")])
    }

    #[test]
    fn honor_labels_and_exported_renaming() {
        let sample =
            Labels::from_pairs([("__name__", "m"), ("job", "inner"), ("exported_job", "x")]);
        let s = ProcessSettings::default();
        let l = final_labels(sample.clone(), &target(), &s)
            .unwrap()
            .unwrap();
        assert_eq!(l.get("job"), Some("app"));
        assert_eq!(l.get("exported_exported_job"), Some("inner"));
        assert_eq!(l.get("exported_job"), Some("x"));
        let s = ProcessSettings {
            honor_labels: true,
            ..Default::default()
        };
        let l = final_labels(sample, &target(), &s).unwrap().unwrap();
        assert_eq!(l.get("job"), Some("inner"));
        assert_eq!(l.get("instance"), Some("127.0.0.1:1"));
    }

    #[test]
    fn page_processing_limits_timestamps_and_cache() {
        let page = b"# TYPE a counter\na_total 1 1000\nb{x=\"1\"} 2\nb{x=\"1\"} 3\ndrop_me 4\n";
        let relabel: Vec<RelabelConfig> =
            serde_saphyr::from_str("- {source_labels: [__name__], regex: 'drop_.*', action: drop}")
                .unwrap();
        let s = ProcessSettings {
            honor_timestamps: true,
            metric_relabel_configs: relabel,
            external_labels: vec![("cluster".into(), "eu".into())],
            ..Default::default()
        };
        let mut cache = SeriesCache::default();
        let p = process(
            page,
            Format::PrometheusText,
            5000,
            &target(),
            &s,
            &mut cache,
        )
        .unwrap();
        assert_eq!(p.samples_scraped, 4);
        assert_eq!(
            p.samples_post_relabel, 2,
            "duplicate series at the same timestamp counts once"
        );
        assert_eq!(p.series.len(), 2);
        assert_eq!(p.series[0].samples, vec![Sample::new(1000, 1.0)]);
        assert_eq!(p.series[0].labels.get("cluster"), Some("eu"));
        assert_eq!(
            p.tracked,
            vec![1],
            "series with explicit timestamps are not tracked for staleness"
        );
        assert_eq!(p.metadata[0].metric_type, MetricType::Counter);
        assert_eq!(cache.len(), 3);
        // Second pass hits the cache and gives the same result.
        let p2 = process(
            page,
            Format::PrometheusText,
            6000,
            &target(),
            &s,
            &mut cache,
        )
        .unwrap();
        assert_eq!(p2.series[1].labels, p.series[1].labels);
        assert_eq!(p2.series[1].samples, vec![Sample::new(6000, 2.0)]);
        // Limits fail the whole scrape.
        let limited = ProcessSettings {
            sample_limit: 1,
            ..s.clone()
        };
        assert!(matches!(
            process(
                page,
                Format::PrometheusText,
                1,
                &target(),
                &limited,
                &mut SeriesCache::default()
            ),
            Err(ScrapeError::Limit(_))
        ));
        let limited = ProcessSettings {
            label_limit: 3,
            ..s.clone()
        };
        assert!(
            process(
                page,
                Format::PrometheusText,
                1,
                &target(),
                &limited,
                &mut SeriesCache::default()
            )
            .is_err()
        );
        let limited = ProcessSettings {
            label_value_length_limit: 5,
            ..s
        };
        assert!(
            process(
                page,
                Format::PrometheusText,
                1,
                &target(),
                &limited,
                &mut SeriesCache::default()
            )
            .is_err()
        );
    }
}
