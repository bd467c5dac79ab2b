//! Metric and label names as YACE users know them: `aws_<namespace>_<metric>_<statistic>`
//! in snake case, dimensions as snake-case labels.
//!
//! The rules are YACE's. Metric names, statistics and dimension names: put `_` between a
//! lower-case letter or digit and the upper-case letter after it, turn every character
//! outside `[a-zA-Z0-9_]` into `_`, lower-case the result (`CPUUtilization` →
//! `cpuutilization`, `HTTPCode_Target_5XX_Count` → `httpcode_target_5_xx_count`,
//! `DBInstanceIdentifier` → `dbinstance_identifier`, `p99.9` → `p99_9`). Namespaces are
//! lower-cased *first*, so they are not split (`AWS/ApplicationELB` → `aws_applicationelb`),
//! and get an `aws_` prefix unless they start with `aws` (`MyApp` → `aws_myapp`).

/// Snake-cases a CloudWatch name the way YACE does.
pub fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push('_');
        }
        prev = Some(c);
    }
    out
}

/// A valid Prometheus label name for a CloudWatch dimension name.
pub fn label_name(dimension: &str) -> String {
    let s = snake_case(dimension);
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{s}")
    } else {
        s
    }
}

/// The namespace part of a metric name: `AWS/RDS` → `aws_rds`, `AWS/ApplicationELB` →
/// `aws_applicationelb`; a namespace not starting with `aws` gets the `aws_` prefix
/// (`MyApp` → `aws_myapp`), so every imported family starts `aws`.
pub fn namespace_prefix(namespace: &str) -> String {
    let s = snake_case(&namespace.to_ascii_lowercase());
    let s = s.trim_start_matches('_').to_string();
    if s.starts_with("aws") {
        s
    } else {
        format!("aws_{s}")
    }
}

/// The metric family name for one statistic of one CloudWatch metric.
pub fn metric_name(namespace: &str, metric: &str, statistic: &str) -> String {
    format!(
        "{}_{}_{}",
        namespace_prefix(namespace),
        snake_case(metric),
        snake_case(statistic)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::labels::{is_valid_legacy_label_name, is_valid_legacy_metric_name};

    #[test]
    fn names_match_yace() {
        assert_eq!(
            metric_name("AWS/RDS", "CPUUtilization", "Average"),
            "aws_rds_cpuutilization_average"
        );
        assert_eq!(
            metric_name("AWS/RDS", "FreeableMemory", "Minimum"),
            "aws_rds_freeable_memory_minimum"
        );
        assert_eq!(
            metric_name("AWS/Lambda", "Invocations", "Sum"),
            "aws_lambda_invocations_sum"
        );
        assert_eq!(
            metric_name(
                "AWS/ApplicationELB",
                "HTTPCode_Target_5XX_Count",
                "SampleCount"
            ),
            "aws_applicationelb_httpcode_target_5_xx_count_sample_count"
        );
        assert_eq!(
            metric_name("AWS/RDS", "FreeStorageSpace", "Average"),
            "aws_rds_free_storage_space_average"
        );
        assert_eq!(
            metric_name("AWS/NATGateway", "BytesOutToDestination", "Sum"),
            "aws_natgateway_bytes_out_to_destination_sum"
        );
        assert_eq!(
            metric_name("/aws/sagemaker/TrainingJobs", "CPUUtilization", "Maximum"),
            "aws_sagemaker_trainingjobs_cpuutilization_maximum"
        );
        assert_eq!(
            metric_name("AWS/Lambda", "Duration", "p99.9"),
            "aws_lambda_duration_p99_9"
        );
        assert_eq!(
            metric_name("MyApp", "QueueDepth", "Maximum"),
            "aws_myapp_queue_depth_maximum"
        );
        assert_eq!(label_name("DBInstanceIdentifier"), "dbinstance_identifier");
        assert_eq!(label_name("FunctionName"), "function_name");
        assert_eq!(label_name("LoadBalancer"), "load_balancer");
        assert_eq!(
            label_name("AutoScalingGroupName"),
            "auto_scaling_group_name"
        );
        assert_eq!(label_name("InstanceId"), "instance_id");
        assert_eq!(label_name("1st-dim"), "_1st_dim");
        for odd in ["a b", "x.y/z", "Ünïcode", "9lives"] {
            assert!(is_valid_legacy_label_name(&label_name(odd)), "{odd}");
            assert!(
                is_valid_legacy_metric_name(&metric_name("Custom/Ns", odd, "p50")),
                "{odd}"
            );
        }
    }
}
