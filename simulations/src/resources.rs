//! The resource model: what each host reports as its load every simulated second.
//!
//! Load grows with what the host holds (a base, plus per primary and per secondary
//! replica, plus the bytes of its cells) and with any squeeze a fault put on it (some
//! other process eating a fraction of its capacity). A little seeded noise keeps the
//! reports from being perfectly flat. The core only sees the numbers, exactly as a real
//! node only sees what sysinfo says.

use crate::scenario::ResourceSpec;
use colony::core::node::Node;
use colony::core::types::Load;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

const MIB: u64 = 1 << 20;

/// Extra load put on a host by a squeeze, as fractions of its capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Squeeze {
    pub cpu: f64,
    pub memory: f64,
}

/// The load `node` reports now.
pub fn load_of(node: &Node, spec: &ResourceSpec, squeeze: Squeeze, rng: &mut ChaCha8Rng) -> Load {
    let cap = node.info().capacity;
    let (primaries, secondaries, bytes) = node.replica_load();
    let noise = |rng: &mut ChaCha8Rng| {
        if spec.jitter > 0.0 {
            1.0 + rng.random_range(-spec.jitter..=spec.jitter)
        } else {
            1.0
        }
    };
    let cpu = (spec.base_cpu
        + primaries as f64 * spec.primary_cpu
        + secondaries as f64 * spec.secondary_cpu)
        * noise(rng)
        + squeeze.cpu * cap.cpu;
    let memory = ((spec.base_memory_mib + (primaries + secondaries) * spec.replica_memory_mib)
        * MIB
        + bytes) as f64
        * noise(rng)
        + squeeze.memory * cap.memory as f64;
    Load {
        cpu: cpu.max(0.0),
        memory: memory.max(0.0) as u64,
    }
}
