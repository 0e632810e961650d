//! Turning layered `Limitation`s (instance over state machine over actor over the service's
//! defaults) into the concrete limits of one container.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::LimitsConfig;
use crate::docker::Limits;
use crate::model::limitation::Limitation;

/// The service's defaults as a complete `Limitation`.
pub fn service_defaults(config: &LimitsConfig) -> Limitation {
    Limitation {
        cpu_period: Some(config.cpu_period),
        cpu_quota: Some(config.cpu_quota),
        memory: Some(config.memory),
        // Swap follows the memory limit unless a layer sets it (see `resolve`).
        memory_swap: None,
        blkio_device_read_bps: None,
        blkio_device_write_bps: None,
        execution_timeout: Some(config.execution_timeout),
        enable_network: Some(false),
        ulimit: Some(BTreeMap::from([("nofile".to_owned(), config.nofile as i64)])),
        pids_limit: Some(config.pids_limit as i64),
        output_limit: Some(config.output_limit),
    }
}

/// Concrete limits from `layers`, most specific first, over the service's defaults.
pub fn resolve(layers: &[Option<&Limitation>], config: &LimitsConfig) -> Limits {
    let merged = layers.iter().rev().flatten().fold(service_defaults(config), |acc, layer| layer.over(&acc));
    let memory = merged.memory.unwrap_or(config.memory) as i64;
    // Unset, swap keeps the service's allowance above whatever memory limit applies; swap
    // below memory makes no sense to the engine.
    let extra_swap = config.memory_swap.saturating_sub(config.memory) as i64;
    let memory_swap = match merged.memory_swap {
        Some(-1) => -1,
        Some(swap) if swap >= memory => swap,
        _ => memory + extra_swap,
    };
    let output_limit = merged.output_limit.unwrap_or(config.output_limit);
    let mut ulimits = merged.ulimit.unwrap_or_default();
    // A file larger than an output may be is cut off as it is written.
    ulimits.entry("fsize".into()).or_insert(output_limit as i64);
    ulimits.entry("core".into()).or_insert(0);
    Limits {
        memory,
        memory_swap,
        cpu_period: merged.cpu_period.unwrap_or(config.cpu_period) as i64,
        cpu_quota: merged.cpu_quota.unwrap_or(config.cpu_quota) as i64,
        pids: merged.pids_limit.unwrap_or(config.pids_limit as i64),
        ulimits: ulimits.into_iter().collect(),
        execution_timeout: Duration::from_millis(merged.execution_timeout.unwrap_or(config.execution_timeout)),
        enable_network: merged.enable_network.unwrap_or(false),
        output_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_layer_wins() {
        let config = LimitsConfig::default();
        let instance = Limitation { memory: Some(64 << 20), ..Default::default() };
        let machine = Limitation { memory: Some(128 << 20), execution_timeout: Some(1000), ..Default::default() };
        let actor = Limitation {
            execution_timeout: Some(5000),
            enable_network: Some(true),
            ulimit: Some(BTreeMap::from([("nproc".into(), 10)])),
            ..Default::default()
        };
        let limits = resolve(&[Some(&instance), Some(&machine), Some(&actor)], &config);
        assert_eq!(limits.memory, 64 << 20);
        assert_eq!(limits.memory_swap, 64 << 20, "no swap unless asked");
        assert_eq!(limits.execution_timeout, Duration::from_millis(1000));
        assert!(limits.enable_network);
        assert!(limits.ulimits.contains(&("nproc".into(), 10)));
        assert!(limits.ulimits.contains(&("nofile".into(), 1024)), "defaults stay under layers");
        assert!(limits.ulimits.contains(&("fsize".into(), 16 << 20)));

        let plain = resolve(&[None], &config);
        assert_eq!(plain.memory, 256 << 20);
        assert!(!plain.enable_network);
        assert_eq!(plain.pids, 256);
    }
}
