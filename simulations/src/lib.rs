//! colony-sim: the deterministic chaos simulator of colony.
//!
//! Whole clusters of the real core state machines ([`colony::core::node::Node`]) run in
//! one process on a virtual clock, with one seeded RNG, a simulated network (latency,
//! loss, partitions, slow hosts), a resource model, clients that keep a ledger of what
//! was acknowledged, faults injected as data (`scenarios/*.toml`), and a checker of the
//! design's invariants. Same scenario and seed, same run, byte for byte.
//!
//! - [`scenario`]: the scenario format; [`layout`]: hosts on boxes in zones.
//! - [`world`]: the event loop; [`queue`]: its agenda; [`hosts`]: host processes;
//!   [`network`]: the links; [`resources`]: load reports; [`faults`]: fault actions;
//!   [`shutdown`]: the whole cluster to disk and back; [`logger`]: logging nodes, their
//!   disks and the check of their logs.
//! - [`workload`]: the clients; [`ledger`]: what acknowledged writes demand.
//! - [`view`]: the cluster as the checker sees it; [`checker`]: the invariants;
//!   [`recovery`]: recovery times and bounds; [`stall`]: each colony's own bound;
//!   [`events`]: the event stream.
//! - [`summary`]: results and the summary table; [`expect`]: scenario expectations;
//!   [`plot`]: the SVG figure; [`batch`]: many seeds in parallel.

pub mod batch;
pub mod checker;
pub mod events;
pub mod expect;
pub mod faults;
pub mod hosts;
pub mod layout;
pub mod ledger;
pub mod logger;
pub mod network;
pub mod plot;
pub mod queue;
pub mod recovery;
pub mod resources;
pub mod scenario;
pub mod shutdown;
pub mod stall;
pub mod summary;
pub mod view;
pub mod workload;
pub mod world;

pub use scenario::Scenario;
pub use summary::{RunResult, Summary};
pub use world::{RunOptions, World};

/// Run `scenario` with `seed` to the end (or the first violation), observing nothing
/// but the result.
pub fn run_scenario(scenario: &Scenario, seed: u64) -> RunResult {
    World::new(scenario, seed, RunOptions::default()).run()
}

/// Run with the event stream captured in [`RunResult::events`].
pub fn run_captured(scenario: &Scenario, seed: u64) -> RunResult {
    let opts = RunOptions {
        sink: events::Sink::Capture(Vec::new()),
        ..RunOptions::default()
    };
    World::new(scenario, seed, opts).run()
}
