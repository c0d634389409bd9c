//! The checker itself is tested: deliberately broken invariants must be caught, and a
//! loss the cluster reports must be counted, not flagged.

use colony::core::types::Role;
use colony_sim::{run_scenario, RunOptions, Scenario, World};

fn small(extra: &str) -> Scenario {
    Scenario::parse(&format!(
        r#"
        name = "checker-test"
        duration_s = 90
        settle_s = 30
        [cluster]
        hosts = 5
        colonies = 32
        replicas = 3
        [workload]
        rate = 50
        keys = 120
        {extra}
        "#
    ))
    .expect("valid scenario")
}

#[test]
fn a_fabricated_acknowledged_write_is_caught() {
    let sc = small("");
    let mut w = World::new(&sc, 3, RunOptions::default());
    w.run_until(80_000);
    assert!(w.failure().is_none(), "a plain run must be clean");
    w.check_ledger_now()
        .expect("the real ledger matches the replicas");
    // Key 0 is a string key: claim a write that never reached any replica.
    let now = w.now();
    w.ledger_mut().keys[0].fabricate_ack(987_654_321, now);
    let v = w
        .check_ledger_now()
        .expect_err("the fabricated write must be missing");
    assert_eq!(v.invariant, "no acknowledged write lost");
    assert!(v.what.contains("s:0"), "{v}");
}

#[test]
fn a_restore_that_misses_saved_cells_is_caught() {
    let sc = Scenario::find("shutdown-restart").expect("scenario exists");
    for (seed, every) in [(1, 1), (2, 20)] {
        let mut w = World::new(&sc, seed, RunOptions::default());
        // The last host left before 35 s; the cold start comes 10 s after it.
        w.run_until(35_000);
        assert!(w.failure().is_none(), "a plain shutdown must be clean");
        assert!(w.disk_cells() > 0, "the last host saved its cells");
        w.corrupt_disk(every);
        let r = w.run();
        let f = r.failure.expect("the lost cells must be noticed");
        assert_eq!(
            f.violation.invariant, "no acknowledged write lost",
            "seed {seed}"
        );
    }
}

#[test]
fn a_log_that_misses_acknowledged_writes_is_caught() {
    let sc = Scenario::find("logger").expect("scenario exists");
    let mut w = World::new(&sc, 2, RunOptions::default());
    // The run ends (its final checks passed) well before this.
    w.run_until(300_000);
    assert!(w.failure().is_none(), "a plain run must be clean");
    let logger = w.logger_ids()[0];
    assert!(w.log_len(logger) > 0, "the logger appended");
    w.check_logs_now().expect("the log matches the ledger");
    // A write the clients were told about that the log never saw.
    let now = w.now();
    w.ledger_mut().keys[0].fabricate_ack(987_654_321, now);
    let v = w
        .check_logs_now()
        .expect_err("the log misses the fabricated write");
    assert_eq!(v.invariant, "the log holds every acknowledged write");
    assert!(v.what.contains("key s:0 "), "{v}");
    // A log writer that lost everything.
    let mut w = World::new(&sc, 2, RunOptions::default());
    w.run_until(300_000);
    w.corrupt_log(logger, 1);
    let v = w
        .check_logs_now()
        .expect_err("an empty log misses every write");
    assert_eq!(v.invariant, "the log holds every acknowledged write");
}

#[test]
fn an_impossible_recovery_bound_is_caught() {
    let sc = small(
        r#"
        [checks]
        recovery_bound_s = 1
        [[faults]]
        kind = "kill"
        at_s = 50
        "#,
    );
    let r = run_scenario(&sc, 1);
    let f = r.failure.expect("recovery cannot take under a second");
    assert_eq!(f.violation.invariant, "recovery");
    assert!(!f.recent_events.is_empty());
}

#[test]
fn losing_every_holder_is_reported_and_counted_not_a_violation() {
    // N = 2 on 7 hosts: killing three hosts at once wipes the colonies they shared,
    // and the four survivors keep cluster quorum, so they recreate and report them.
    // Every holder of those colonies died: the design allows it, and the checker
    // (which asks the hosts whether any still holds the colony) lets it pass.
    let sc = Scenario::parse(
        r#"
        name = "wipe"
        duration_s = 100
        settle_s = 40
        [cluster]
        hosts = 7
        colonies = 64
        replicas = 2
        [workload]
        rate = 80
        keys = 300
        [[faults]]
        kind = "kill"
        at_s = 60
        host = 2
        [[faults]]
        kind = "kill"
        at_s = 60
        host = 3
        [[faults]]
        kind = "kill"
        at_s = 60
        host = 4
        "#,
    )
    .expect("valid scenario");
    let r = run_scenario(&sc, 1);
    assert!(r.failure.is_none(), "{}", r.failure_report());
    assert!(r.data_lost_events > 0);
    assert!(
        r.writes_lost > 0,
        "acknowledged writes in the wiped colonies are counted as lost-and-reported"
    );
}

#[test]
fn a_storage_node_left_alone_holds_every_colony_as_primary_in_its_value_log() {
    let sc = Scenario::find("storage-shutdown").expect("scenario exists");
    let storage = sc.cluster.hosts + sc.cluster.loggers + 1;
    let mut w = World::new(&sc, 2, RunOptions::default());
    // The last ordinary host left soon after 130 s; new hosts join at 200 s.
    w.run_until(190_000);
    assert!(
        w.failure().is_none(),
        "{:?}",
        w.failure().map(|f| &f.violation)
    );
    let node = w.node(storage).expect("the storage node runs");
    assert_eq!(node.replicas().count() as u32, sc.cluster.colonies);
    assert!(node
        .replicas()
        .all(|r| r.role == Role::Primary && r.cells.is_on_disk()));
    w.check_ledger_now()
        .expect("the storage node holds every acknowledged write");
    let r = w.run();
    assert!(r.passed(), "{}", r.failure_report());
    assert!(r.storage.alone_checks >= 60, "{:?}", r.storage);
    assert_eq!(r.storage.primaries_at_end, 0);
}
