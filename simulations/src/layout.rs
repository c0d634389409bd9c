//! The cluster's shape: which box and zone each host stands on, and its capacity.
//!
//! Hosts go round-robin over boxes and boxes round-robin over zones: with 9 hosts on 3
//! boxes in 3 zones, host 1 is on box b0 in zone z0, host 2 on b1 in z1, host 4 on b0
//! again. Host ids start at 1; the n-th host ever created (joins included) gets id n.
//! Logging nodes come right after the initial hosts, each on a box of its own (`log<i>`),
//! their zones round-robin from z0; storage nodes come after the loggers, likewise each
//! on a box of its own (`st<i>`), zones round-robin from z0.

use crate::scenario::ClusterSpec;
use colony::core::types::{HostId, HostInfo, HostRole, Resources};

const GIB: f64 = (1u64 << 30) as f64;

/// The box of the host with index `i` (0-based), continuing the round robin.
pub fn box_of(spec: &ClusterSpec, i: u32) -> u32 {
    i % spec.boxes()
}

/// The zone of box `b`.
pub fn zone_of(spec: &ClusterSpec, b: u32) -> u32 {
    b % spec.zones.max(1)
}

pub fn box_name(b: u32) -> String {
    format!("b{b}")
}

pub fn zone_name(z: u32) -> String {
    format!("z{z}")
}

/// The identity of host id `id` placed by the round robin, or on an explicit box/zone.
pub fn host_info(
    spec: &ClusterSpec,
    id: HostId,
    box_override: Option<&str>,
    zone_override: Option<&str>,
) -> HostInfo {
    let b = box_of(spec, id - 1);
    let box_name = box_override.map_or_else(|| box_name(b), str::to_owned);
    let zone = zone_override.map_or_else(|| zone_name(zone_of(spec, b)), str::to_owned);
    HostInfo {
        id,
        box_name: box_name.into(),
        zone: zone.into(),
        capacity: Resources {
            cpu: spec.cpu,
            memory: (spec.memory_gib * GIB) as u64,
        },
        role: HostRole::Normal,
    }
}

/// The identity of the `i`-th logging node (0-based), host id `id`: a box of its own.
pub fn logger_info(spec: &ClusterSpec, id: HostId, i: u32) -> HostInfo {
    own_box_info(spec, id, i, "log", HostRole::Logger)
}

/// The identity of the `i`-th storage node (0-based), host id `id`: a box of its own.
pub fn storage_info(spec: &ClusterSpec, id: HostId, i: u32) -> HostInfo {
    own_box_info(spec, id, i, "st", HostRole::Storage)
}

/// The `i`-th node of `role` on box `<prefix><i>`, zones round-robin from z0.
fn own_box_info(spec: &ClusterSpec, id: HostId, i: u32, prefix: &str, role: HostRole) -> HostInfo {
    let zone = zone_name(i % spec.zones.max(1));
    let mut info = host_info(spec, id, Some(&format!("{prefix}{i}")), Some(&zone));
    info.role = role;
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_over_boxes_then_zones() {
        let spec: ClusterSpec =
            toml::from_str("hosts = 9\nboxes = 3\nzones = 3\ncolonies = 8").unwrap();
        let h1 = host_info(&spec, 1, None, None);
        let h4 = host_info(&spec, 4, None, None);
        let h2 = host_info(&spec, 2, None, None);
        assert_eq!((h1.box_name.as_ref(), h1.zone.as_ref()), ("b0", "z0"));
        assert_eq!((h4.box_name.as_ref(), h4.zone.as_ref()), ("b0", "z0"));
        assert_eq!((h2.box_name.as_ref(), h2.zone.as_ref()), ("b1", "z1"));
        let j = host_info(&spec, 10, Some("bx"), Some("z9"));
        assert_eq!((j.box_name.as_ref(), j.zone.as_ref()), ("bx", "z9"));
        let l = logger_info(&spec, 11, 1);
        assert_eq!((l.box_name.as_ref(), l.zone.as_ref()), ("log1", "z1"));
        assert_eq!(l.role, HostRole::Logger);
        let s = storage_info(&spec, 12, 0);
        assert_eq!((s.box_name.as_ref(), s.zone.as_ref()), ("st0", "z0"));
        assert_eq!(s.role, HostRole::Storage);
    }
}
