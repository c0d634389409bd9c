//! `colony status [ADDR]`: one node's view of the cluster, as two tables (hosts, then
//! colonies) and a summary line.

use super::http;
use anyhow::Result;
use colony::admin::report::StatusReport;
use std::fmt::Write;

pub fn run(addr: &str, json: bool) -> Result<()> {
    let s = http::status(addr)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// The tables as text.
pub fn render(s: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}  seen from host {} (incarnation {}, {}{})  colonies {}  N={} (target {})\n",
        s.cluster,
        s.host,
        s.incarnation,
        s.state,
        if s.quorum { ", quorum" } else { ", NO QUORUM" },
        s.colonies,
        s.replicas,
        s.target
    );
    let _ = writeln!(
        out,
        "{:>10}  {:<8} {:<10} {:<10} {:<8} {:>8} {:>9} {:>9} {:>11}  {:<21} {:<21}",
        "HOST",
        "STATE",
        "BOX",
        "ZONE",
        "ROLE",
        "REPLICAS",
        "PRIMARIES",
        "CPU",
        "MEM MiB",
        "PEER",
        "CLIENT"
    );
    for m in &s.members {
        let (peer, client) = m
            .addrs
            .as_ref()
            .map(|a| (a.peer.as_str(), a.client.as_str()))
            .unwrap_or(("?", "?"));
        let _ = writeln!(
            out,
            "{:>10}  {:<8} {:<10} {:<10} {:<8} {:>8} {:>9} {:>4.1}/{:<4.0} {:>5}/{:<5}  {:<21} {:<21}",
            m.id,
            m.state,
            m.box_name,
            m.zone,
            m.role,
            m.replicas,
            m.primaries,
            m.cpu_used,
            m.cpu_capacity,
            mib(m.memory_used),
            mib(m.memory_capacity),
            peer,
            client
        );
    }
    let _ = writeln!(
        out,
        "\n{:>7}  {:<12} {:>10}  SECONDARIES",
        "COLONY", "EPOCH", "PRIMARY"
    );
    let mut under = 0;
    for d in &s.directory {
        let short = (d.secondaries.len() as u32 + 1) < s.target;
        under += usize::from(short);
        let secs: Vec<String> = d.secondaries.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(
            out,
            "{:>7}  {:<12} {:>10}  {}{}",
            d.colony,
            d.epoch,
            d.primary,
            secs.join(","),
            if short { "  (under-replicated)" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "\n{} colonies known, {} under-replicated, {} migrations in flight from this host",
        s.directory.len(),
        under,
        s.migrations.len()
    );
    out
}
