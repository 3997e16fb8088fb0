//! Topic configuration: the Kafka names Strata accepts, their defaults and their validation.

use std::collections::BTreeMap;

/// `(name, default)` for every topic config Strata accepts, as Kafka names them.
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("local.retention.bytes", "-2"),
    ("local.retention.ms", "-2"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.after.max.ms", "9223372036854775807"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("preallocate", "false"),
    ("remote.storage.enable", "false"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.jitter.ms", "0"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

pub fn default_value(name: &str) -> Option<&'static str> {
    TOPIC_CONFIGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
}

/// Checks one `name = value`; the error text is what Kafka's clients show the user.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(_) = default_value(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let long = |min: i64| match value.parse::<i64>() {
        Ok(v) if v >= min => Ok(()),
        _ => Err(format!("Invalid value {value} for configuration {name}")),
    };
    match name {
        "cleanup.policy" => {
            let ok = value
                .split(',')
                .map(str::trim)
                .all(|p| p == "delete" || p == "compact");
            ok.then_some(())
                .ok_or_else(|| format!("Invalid value {value} for configuration {name}"))
        }
        "message.timestamp.type" => matches!(value, "CreateTime" | "LogAppendTime")
            .then_some(())
            .ok_or_else(|| format!("Invalid value {value} for configuration {name}")),
        "compression.type" => matches!(
            value,
            "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
        )
        .then_some(())
        .ok_or_else(|| format!("Invalid value {value} for configuration {name}")),
        "retention.ms" | "retention.bytes" | "local.retention.ms" | "local.retention.bytes" => {
            long(-2)
        }
        "max.message.bytes" | "min.compaction.lag.ms" | "segment.jitter.ms" => long(0),
        "segment.bytes" => long(14),
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(format!("Invalid value {value} for configuration {name}")),
        },
        "preallocate" | "remote.storage.enable" | "unclean.leader.election.enable" => {
            matches!(value, "true" | "false")
                .then_some(())
                .ok_or_else(|| format!("Invalid value {value} for configuration {name}"))
        }
        _ => long(0),
    }
}

/// A topic's effective value for `name`: its own setting, else the default.
pub fn effective<'a>(configs: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    configs
        .get(name)
        .map(String::as_str)
        .or_else(|| default_value(name))
}

pub fn effective_i64(configs: &BTreeMap<String, String>, name: &str) -> i64 {
    effective(configs, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}
