//! Resource sensing: what the machine has and what this node uses, read with `sysinfo`
//! and reported to the core as [`Load`], so colonies drift toward hosts with room.

use crate::core::types::{Load, Resources};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Samples this process's cpu and resident memory.
pub struct Sensor {
    sys: System,
    pid: Option<Pid>,
}

impl Sensor {
    pub fn new() -> Self {
        Sensor {
            sys: System::new(),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    /// The machine's capacity: logical cpus and total memory.
    pub fn machine(&mut self) -> Resources {
        self.sys.refresh_memory();
        let cpu = std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0);
        Resources {
            cpu,
            memory: self.sys.total_memory(),
        }
    }

    /// Cores and bytes this process uses now (cpu is averaged since the last sample).
    pub fn sample(&mut self) -> Load {
        let Some(pid) = self.pid else {
            return Load::default();
        };
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        match self.sys.process(pid) {
            Some(p) => Load {
                cpu: f64::from(p.cpu_usage()) / 100.0,
                memory: p.memory(),
            },
            None => Load::default(),
        }
    }
}

impl Default for Sensor {
    fn default() -> Self {
        Sensor::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senses_a_machine_and_a_resident_process() {
        let mut s = Sensor::new();
        let m = s.machine();
        assert!(m.cpu >= 1.0 && m.memory > 0);
        let load = s.sample();
        assert!(load.memory > 0, "this test process uses memory: {load:?}");
        assert!(load.memory < m.memory);
    }
}
