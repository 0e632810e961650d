//! ContainerLimitation: the resource limits of an actor's container. Every field is
//! optional; an instance's value overrides its state machine's, which overrides the service's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limitation {
    /// CFS period in microseconds.
    #[serde(alias = "CpuPeriod", alias = "CPUPeriod")]
    #[schema(example = 100000, minimum = 1)]
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds per period.
    #[serde(alias = "CpuQuota", alias = "CPUQuota")]
    #[schema(example = 100000, minimum = 1)]
    pub cpu_quota: Option<u64>,
    /// Memory limit in bytes.
    #[serde(alias = "Memory")]
    #[schema(example = 268435456, minimum = 4194304)]
    pub memory: Option<u64>,
    /// Memory plus swap limit in bytes.
    #[serde(alias = "MemorySwap")]
    #[schema(example = 268435456)]
    pub memory_swap: Option<i64>,
    /// Read limit in bytes per second on the node's block devices.
    #[serde(alias = "BlkioDeviceReadBps")]
    #[schema(example = 104857600)]
    pub blkio_device_read_bps: Option<u64>,
    /// Write limit in bytes per second on the node's block devices.
    #[serde(alias = "BlkioDeviceWriteBps")]
    #[schema(example = 104857600)]
    pub blkio_device_write_bps: Option<u64>,
    /// Wall-clock limit of one actor, in milliseconds.
    #[serde(alias = "ExecutionTimeout")]
    #[schema(example = 30000, minimum = 1)]
    pub execution_timeout: Option<u64>,
    /// Whether the container gets a network (off by default).
    #[serde(alias = "EnableNetwork")]
    #[schema(example = false)]
    pub enable_network: Option<bool>,
    /// Process limits by name (`nofile`, `nproc`, …), soft and hard set to the value.
    #[serde(alias = "Ulimit")]
    #[schema(schema_with = super::schemas::ulimits)]
    pub ulimit: Option<BTreeMap<String, i64>>,
    /// Most processes the container may hold.
    #[serde(alias = "PidsLimit")]
    #[schema(example = 256, minimum = 1)]
    pub pids_limit: Option<i64>,
    /// Largest size in bytes of any one output file.
    #[serde(alias = "OutputLimit")]
    #[schema(example = 16777216, minimum = 1)]
    pub output_limit: Option<u64>,
}

impl Limitation {
    /// These limits, with every unset field taken from `fallback`.
    pub fn over(&self, fallback: &Limitation) -> Limitation {
        Limitation {
            cpu_period: self.cpu_period.or(fallback.cpu_period),
            cpu_quota: self.cpu_quota.or(fallback.cpu_quota),
            memory: self.memory.or(fallback.memory),
            memory_swap: self.memory_swap.or(fallback.memory_swap),
            blkio_device_read_bps: self.blkio_device_read_bps.or(fallback.blkio_device_read_bps),
            blkio_device_write_bps: self.blkio_device_write_bps.or(fallback.blkio_device_write_bps),
            execution_timeout: self.execution_timeout.or(fallback.execution_timeout),
            enable_network: self.enable_network.or(fallback.enable_network),
            ulimit: match (&self.ulimit, &fallback.ulimit) {
                (Some(mine), Some(theirs)) => {
                    let mut merged = theirs.clone();
                    merged.extend(mine.iter().map(|(k, v)| (k.clone(), *v)));
                    Some(merged)
                }
                (mine, theirs) => mine.clone().or_else(|| theirs.clone()),
            },
            pids_limit: self.pids_limit.or(fallback.pids_limit),
            output_limit: self.output_limit.or(fallback.output_limit),
        }
    }

    /// Checks values that have the right type but make no sense; names the field.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        let positive = |name: &str, v: Option<u64>| match v {
            Some(0) => Err(format!("field `{field}.{name}` must be greater than 0")),
            _ => Ok(()),
        };
        // Stored as BIGINT: what does not fit is refused here, not wrapped around.
        for (name, v) in [
            ("cpuPeriod", self.cpu_period),
            ("cpuQuota", self.cpu_quota),
            ("memory", self.memory),
            ("blkioDeviceReadBps", self.blkio_device_read_bps),
            ("blkioDeviceWriteBps", self.blkio_device_write_bps),
            ("executionTimeout", self.execution_timeout),
            ("outputLimit", self.output_limit),
        ] {
            if v.is_some_and(|v| i64::try_from(v).is_err()) {
                return Err(format!("field `{field}.{name}` must be at most {}", i64::MAX));
            }
        }
        positive("cpuPeriod", self.cpu_period)?;
        positive("cpuQuota", self.cpu_quota)?;
        positive("executionTimeout", self.execution_timeout)?;
        positive("outputLimit", self.output_limit)?;
        if let Some(memory) = self.memory
            && memory < 4 << 20
        {
            return Err(format!("field `{field}.memory` must be at least 4 MiB (4194304 bytes)"));
        }
        if let Some(pids) = self.pids_limit
            && pids < 1
        {
            return Err(format!("field `{field}.pidsLimit` must be at least 1"));
        }
        if let Some(ulimit) = &self.ulimit {
            for name in ulimit.keys() {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase()) {
                    return Err(format!("field `{field}.ulimit`: `{name}` is not a ulimit name like `nofile`"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_cases_and_checks_values() {
        let l: Limitation = serde_json::from_str(r#"{"Memory": 67108864, "executionTimeout": 1000}"#).unwrap();
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.execution_timeout, Some(1000));
        assert!(l.validate("limitation").is_ok());
        let bad = Limitation { memory: Some(10), ..Default::default() };
        assert!(bad.validate("limitation").unwrap_err().contains("limitation.memory"));
    }
}
