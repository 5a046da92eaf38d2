//! What every caller connection shares: the route table, the tokens and the backend
//! (control-plane) address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use crate::args::usage;
use crate::table::Table;
use crate::upstream::Upstreams;

pub struct State {
    pub table: RwLock<Arc<Table>>,
    pub backend: String,
    tokens: Vec<Vec<u8>>,
    pub internal_auth: HeaderValue,
    /// request ids: a per-process seed plus a counter, mixed (no syscall per call)
    id_seed: u64,
    ids: AtomicU64,
}

impl State {
    /// The state of a router forwarding everything else to `backend`, with the tokens from the
    /// environment; exits through `usage` when one that is needed is missing.
    pub fn from_env(backend: String) -> State {
        let env = |k: &str| std::env::var(k).unwrap_or_default();
        let internal = env("APT_INTERNAL_TOKEN");
        if internal.is_empty() {
            usage("APT_INTERNAL_TOKEN is not set: plugins accept calls carrying the gateway's internal token only");
        }
        let tokens: Vec<Vec<u8>> = [env("APT_TOKEN"), env("APT_ADMIN_TOKEN")]
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(String::into_bytes)
            .collect();
        if tokens.is_empty() {
            usage("neither APT_TOKEN nor APT_ADMIN_TOKEN is set: every plugin call needs a token");
        }
        let internal_auth = HeaderValue::from_str(&format!("Bearer {internal}"))
            .unwrap_or_else(|_| usage("APT_INTERNAL_TOKEN has characters a header cannot carry"));
        State { table: RwLock::new(Arc::new(Table::default())), backend, tokens, internal_auth,
                id_seed: (std::process::id() as u64) << 32 ^ now_nanos(), ids: AtomicU64::new(0) }
    }

    /// The upstream connections of one caller connection: one HTTP/2 connection per endpoint it
    /// calls, opened on first use and closed with the caller's connection.
    ///
    /// Why not one shared connection per endpoint: a caller that stops reading a server stream
    /// makes apt-router stop reading that stream upstream (Relay), and the unread data stays
    /// charged to the upstream connection's flow-control window until it is read. On a
    /// connection shared by every caller, a few such streams (five unread DownloadModel streams:
    /// 5 x 8 MiB stream windows > the 32 MiB connection window) used the whole window, the
    /// backend could send nothing more on it, and every other caller's calls hung past their
    /// deadlines. Per caller connection, unread streams use up only that caller's own window,
    /// as they would if it called the backend directly.
    pub fn upstream_for_caller(&self) -> Upstreams {
        Upstreams::default()
    }

    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else { return false };
        let value = value.as_bytes();
        if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        let token = value[7..].trim_ascii();
        !token.is_empty() && self.tokens.iter().any(|t| constant_time_eq(t, token))
    }

    pub fn request_id(&self) -> String {
        // splitmix64 is a bijection, so seed + n differs per call; the gateway's ids are 12 hex digits too
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{:012x}", splitmix64(self.id_seed.wrapping_add(n)) & 0xffff_ffff_ffff)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_as_bearer_tokens() {
        let state = State {
            table: RwLock::new(Arc::new(Table::default())),
            backend: "127.0.0.1:1".into(),
            tokens: vec![b"user".to_vec(), b"admin".to_vec()],
            internal_auth: HeaderValue::from_static("Bearer internal"),
            id_seed: 7,
            ids: AtomicU64::new(0),
        };
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert!(state.authorized(&with("Bearer user")));
        assert!(state.authorized(&with("bearer admin")));
        assert!(!state.authorized(&with("Bearer wrong")));
        assert!(!state.authorized(&with("Bearer ")));
        assert!(!state.authorized(&with("user")));
        assert!(!state.authorized(&with("Bearer internal")));
        assert!(!state.authorized(&HeaderMap::new()));
        assert_ne!(state.request_id(), state.request_id());
        assert_eq!(state.request_id().len(), 12);
    }
}
