//! The text of the RESP `INFO` command, Redis-style (`# Section` then `key:value`
//! lines), built from the same report as `/status` and `/metrics`.

use super::report::{Counters, StatusReport};
use std::fmt::Write;

/// Renders `INFO [section]`. Unknown sections give an empty answer, as in Redis.
pub fn render(status: &StatusReport, counters: &Counters, section: Option<&str>) -> String {
    let want = |name: &str| {
        section.is_none_or(|s| {
            let s = s.to_ascii_lowercase();
            s == "all" || s == "default" || s == "everything" || s == name
        })
    };
    let mut out = String::new();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:7.2.0\r\ncolony_version:{}\r\nredis_mode:cluster\r\nhost_id:{}\r\nincarnation:{}\r\ncluster_name:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            status.host,
            status.incarnation,
            status.cluster
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\n\r\n",
            counters.sessions
        );
    }
    if want("stats") {
        let _ = write!(
            out,
            "# Stats\r\ntotal_writes:{}\r\ntotal_reads:{}\r\nclient_errors:{}\r\nwrites_per_sec:{:.1}\r\npromotions:{}\r\nclones:{}\r\nmigrations:{}\r\n\r\n",
            counters.writes,
            counters.reads,
            counters.client_errors,
            counters.writes_per_sec,
            counters.promotions,
            counters.clones,
            counters.migrations
        );
    }
    if want("cluster") {
        // Cluster-aware clients check this before asking `CLUSTER SLOTS`.
        out.push_str("# Cluster\r\ncluster_enabled:1\r\n\r\n");
    }
    if want("cluster") || want("colony") {
        let alive = status.members.iter().filter(|m| m.state == "alive").count();
        let primaries = status.local.iter().filter(|r| r.role == "primary").count();
        let cells: u64 = status
            .local
            .iter()
            .filter(|r| r.role == "primary")
            .map(|r| r.cells)
            .sum();
        let _ = write!(
            out,
            "# Colony\r\nstate:{}\r\nquorum:{}\r\nmembers_alive:{}\r\ncolonies:{}\r\nreplicas_target:{}\r\nlocal_replicas:{}\r\nlocal_primaries:{}\r\nlocal_primary_cells:{}\r\n\r\n",
            status.state,
            u8::from(status.quorum),
            alive,
            status.colonies,
            status.target,
            status.local.len(),
            primaries,
            cells
        );
    }
    out
}
