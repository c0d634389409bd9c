//! What `CONFIG GET` answers. colony has no Redis configuration; it reports the few
//! parameters tools read on start (redis-benchmark asks for `save` and `appendonly`)
//! with values that describe colony truthfully: no snapshots, no AOF, one database.

use super::value::RespValue;
use crate::core::blob::Blob;

/// `(name, value)` of every parameter `CONFIG GET` knows.
const PARAMETERS: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("databases", "1"),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("cluster-enabled", "no"),
];

/// The flat name/value array for `CONFIG GET pattern...`: each parameter matching any of
/// the glob patterns (case-insensitive), once, in table order.
pub fn config_get(patterns: &[Blob]) -> RespValue {
    let mut reply = Vec::new();
    for (name, value) in PARAMETERS {
        if patterns.iter().any(|p| glob_matches(p, name.as_bytes())) {
            reply.push(RespValue::Bulk(Blob::from(*name)));
            reply.push(RespValue::Bulk(Blob::from(*value)));
        }
    }
    RespValue::Array(reply)
}

/// Glob matching with `*` and `?`, ASCII case-insensitive. Linear backtracking to the
/// last `*`, so a hostile pattern costs at most `pattern × text` steps.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                last_star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match last_star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    last_star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(reply: RespValue) -> Vec<String> {
        match reply {
            RespValue::Array(items) => items
                .iter()
                .step_by(2)
                .map(|item| match item {
                    RespValue::Bulk(name) => String::from_utf8_lossy(name).into_owned(),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_redis_benchmark_asks() {
        assert_eq!(
            config_get(&[b"save".into()]),
            RespValue::Array(vec![
                RespValue::Bulk(b"save".into()),
                RespValue::Bulk(Vec::new().into())
            ])
        );
        assert_eq!(
            config_get(&[b"appendonly".into()]),
            RespValue::Array(vec![
                RespValue::Bulk(b"appendonly".into()),
                RespValue::Bulk(b"no".into())
            ])
        );
        assert_eq!(config_get(&[b"nosuch".into()]), RespValue::Array(vec![]));
    }

    #[test]
    fn patterns_match_once_each() {
        assert_eq!(
            names(config_get(&[b"max*".into()])),
            ["maxmemory", "maxmemory-policy"]
        );
        assert_eq!(
            names(config_get(&[b"SAVE".into(), b"s?ve".into()])),
            ["save"]
        );
        assert_eq!(names(config_get(&[b"*".into()])).len(), PARAMETERS.len());
    }

    #[test]
    fn glob() {
        assert!(glob_matches(b"a*b*c", b"aXXbYYc"));
        assert!(glob_matches(b"*", b""));
        assert!(glob_matches(b"**a", b"a"));
        assert!(!glob_matches(b"a*b", b"aXXc"));
        assert!(!glob_matches(b"", b"a"));
        assert!(!glob_matches(b"?", b""));
        assert!(glob_matches(&[b'*'; 200], &[b'a'; 200]));
        let mut hostile = b"*a".repeat(50);
        hostile.push(b'b');
        assert!(!glob_matches(&hostile, &[b'a'; 500]));
    }
}
