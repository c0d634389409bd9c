//! `/metrics` in the Prometheus text format (version 0.0.4), rendered from the status
//! report and the host's counters.

use super::report::{Counters, StatusReport};
use std::fmt::Write;

/// The whole exposition.
pub fn render(status: &StatusReport, c: &Counters) -> String {
    let mut out = String::with_capacity(4096);
    let host = status.host;
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP colony_{name} {help}");
        let _ = writeln!(out, "# TYPE colony_{name} gauge");
        let _ = writeln!(out, "colony_{name}{{host=\"{host}\"}} {value}");
    };
    let alive = status.members.iter().filter(|m| m.state == "alive").count();
    gauge(
        "members_alive",
        "Members this node sees alive.",
        alive as f64,
    );
    let dead = status.members.iter().filter(|m| m.state == "dead").count();
    gauge(
        "members_dead",
        "Members this node has declared dead.",
        dead as f64,
    );
    gauge(
        "quorum",
        "1 when this node's side holds quorum.",
        f64::from(u8::from(status.quorum)),
    );
    let under = status
        .directory
        .iter()
        .filter(|d| (d.secondaries.len() as u32 + 1) < status.target)
        .count();
    gauge(
        "colonies_under_replicated",
        "Colonies with fewer in-sync replicas than the target population (this node's directory).",
        under as f64,
    );
    gauge(
        "migrations_in_flight",
        "Clones this node's primaries are streaming.",
        status.migrations.len() as f64,
    );
    let lag = status.local.iter().map(|r| r.lag).max().unwrap_or(0);
    gauge(
        "replication_lag_mutations",
        "Largest number of mutations a local primary's slowest secondary has yet to acknowledge.",
        lag as f64,
    );
    let cells: u64 = status.local.iter().map(|r| r.cells).sum();
    gauge(
        "cells",
        "Cells held on this host (all replicas).",
        cells as f64,
    );
    let primaries = status.local.iter().filter(|r| r.role == "primary").count();
    gauge(
        "primaries",
        "Colony primaries on this host.",
        primaries as f64,
    );
    gauge(
        "replicas",
        "Colony replicas on this host.",
        status.local.len() as f64,
    );
    gauge(
        "writes_per_second",
        "Writes acknowledged per second (5 s window).",
        c.writes_per_sec,
    );
    gauge("sessions", "Open client connections.", c.sessions as f64);
    gauge(
        "replicas_catching_up",
        "Local replicas not yet in sync.",
        c.replicas_catching_up as f64,
    );
    let counters: [(&str, &str, u64); 13] = [
        (
            "writes",
            "Writes acknowledged to clients connected here.",
            c.writes,
        ),
        (
            "reads",
            "Reads answered to clients connected here.",
            c.reads,
        ),
        (
            "client_errors",
            "Error replies to clients connected here.",
            c.client_errors,
        ),
        ("frames_in", "Peer frames received.", c.frames_in),
        ("frames_out", "Peer frames sent.", c.frames_out),
        (
            "frames_dropped",
            "Peer frames dropped while a link was down.",
            c.frames_dropped,
        ),
        (
            "unroutable",
            "Messages for hosts with no known address.",
            c.unroutable,
        ),
        (
            "handshakes_refused",
            "Peer connections refused at the handshake.",
            c.handshakes_refused,
        ),
        ("promotions", "Promotions seen on this host.", c.promotions),
        ("clones", "Clones completed on this host.", c.clones),
        (
            "migrations",
            "Migrations completed on this host.",
            c.migrations,
        ),
        ("events", "Events emitted by this host.", c.events),
        (
            "sessions_opened",
            "Client connections accepted.",
            c.sessions_opened,
        ),
    ];
    let mut counters: Vec<(&str, &str, u64)> = counters.to_vec();
    if let Some(l) = &status.logger {
        gauge(
            "logger_buffered_bytes",
            "A logging node: bytes received and not yet written.",
            l.writer.buffered_bytes as f64,
        );
        gauge(
            "logger_buffer_capacity_bytes",
            "A logging node: the write buffer's capacity.",
            l.writer.buffer_capacity as f64,
        );
        gauge(
            "logger_segment",
            "A logging node: the number of the segment being written.",
            l.writer.segment as f64,
        );
        counters.extend([
            (
                "logger_entries",
                "A logging node: mutations written to the log.",
                l.writer.entries,
            ),
            (
                "logger_snapshots",
                "A logging node: colony snapshots written to the log.",
                l.writer.snapshots,
            ),
            (
                "logger_bytes",
                "A logging node: record bytes written to the log.",
                l.writer.bytes,
            ),
            (
                "logger_dropped",
                "A logging node: entries dropped because the buffer was full (fetched again).",
                l.writer.dropped,
            ),
            (
                "logger_overflows",
                "A logging node: times the write buffer was full.",
                l.writer.overflows,
            ),
            (
                "logger_write_errors",
                "A logging node: failed appends or fsyncs.",
                l.writer.write_errors,
            ),
            (
                "logger_gaps",
                "A logging node: gaps found in a colony's stream (each fetched again).",
                l.sink.gaps,
            ),
        ]);
    }
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP colony_{name}_total {help}");
        let _ = writeln!(out, "# TYPE colony_{name}_total counter");
        let _ = writeln!(out, "colony_{name}_total{{host=\"{host}\"}} {value}");
    }
    out
}
