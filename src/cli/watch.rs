//! `colony watch [ADDR]`: follows the event stream of every node in the cluster (found
//! through ADDR's `/status`, and again every few seconds so newcomers are followed
//! too) and prints one line per event: readable by default, JSON with `--json`.

use super::http;
use anyhow::Result;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

/// Prints events until interrupted.
pub fn run(addr: &str, json: bool, from_start: bool) -> Result<()> {
    http::status(addr)?;
    let (tx, rx) = mpsc::channel::<String>();
    let seed = addr.to_string();
    std::thread::spawn(move || follow_cluster(seed, from_start, tx));
    for line in rx {
        if json {
            println!("{line}");
        } else {
            println!("{}", readable(&line));
        }
    }
    Ok(())
}

/// Subscribes to every member's events (each member once per incarnation), sending the
/// raw JSON lines to `tx`, until `tx` is closed.
pub fn follow_cluster(seed: String, from_start: bool, tx: mpsc::Sender<String>) {
    let mut followed: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut known: Vec<String> = vec![seed];
    loop {
        let status = known.iter().find_map(|a| http::status(a).ok());
        if let Some(s) = status {
            known = s
                .members
                .iter()
                .filter(|m| m.state == "alive" || m.state == "leaving")
                .filter_map(|m| m.addrs.as_ref().map(|a| a.admin.clone()))
                .collect();
            for m in &s.members {
                let Some(a) = &m.addrs else { continue };
                if m.state != "alive" || !followed.insert((m.id, m.incarnation)) {
                    continue;
                }
                let (admin, tx) = (a.admin.clone(), tx.clone());
                std::thread::spawn(move || follow_node(&admin, from_start, tx));
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn follow_node(admin: &str, from_start: bool, tx: mpsc::Sender<String>) {
    let Ok(reader) = http::events(admin, from_start) else {
        return;
    };
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { return };
        if let Some(data) = line.strip_prefix("data: ") {
            if tx.send(data.to_string()).is_err() {
                return;
            }
        }
    }
}

/// `HH:MM:SS.mmm  host 3  colony_promoted  colony=17 epoch=4.3 reason=failover`.
pub fn readable(json: &str) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return json.to_string();
    };
    let t = map.remove("t").and_then(|v| v.as_u64()).unwrap_or(0);
    let host = map
        .remove("host")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let event = map
        .remove("event")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let ms = t % 1000;
    let secs = (t / 1000) % 86_400;
    let mut line = format!(
        "{:02}:{:02}:{:02}.{ms:03}  host {host:>10}  {event:<22}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    for (k, v) in map {
        let v = match v {
            serde_json::Value::Object(o) if o.contains_key("term") => format!(
                "{}.{}",
                o.get("term").map(|x| x.to_string()).unwrap_or_default(),
                o.get("by").map(|x| x.to_string()).unwrap_or_default()
            ),
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        line.push_str(&format!(" {k}={v}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_lines_show_time_host_event_and_fields() {
        let l = readable(
            r#"{"t":3723004,"host":7,"event":"colony_promoted","colony":17,"epoch":{"term":4,"by":7},"seq":9,"reason":"failover"}"#,
        );
        assert!(
            l.starts_with("01:02:03.004  host          7  colony_promoted"),
            "{l}"
        );
        assert!(
            l.contains("colony=17") && l.contains("epoch=4.7") && l.contains("reason=failover"),
            "{l}"
        );
    }
}
