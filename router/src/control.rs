//! Control from the gateway: route tables on stdin, and when to stop (EOF on stdin or SIGTERM).

use std::sync::Arc;

use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

use crate::logs::{event, log, log_line};
use crate::state::State;
use crate::table::{Table, TableMsg};

/// Install each route table the gateway writes to stdin (one JSON object a line); when the
/// gateway closes the pipe, send `true` on `stop`.
pub async fn read_tables(state: Arc<State>, stop: watch::Sender<bool>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => continue,
            Ok(Some(line)) => match serde_json::from_str::<TableMsg>(&line) {
                Ok(msg) => {
                    let version = msg.version;
                    let table = Table::from_msg(msg);
                    let routed = table.routes.len();
                    *state.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
                    log_line("DEBUG", &format!("route table updated: {routed} routable plugin(s)"), Default::default());
                    // the gateway waits for this before an install or uninstall returns
                    event(serde_json::json!({"event": "table", "version": version}));
                }
                Err(err) => log("ERROR", &format!("ignored a route table that is not valid JSON: {err}")),
            },
            Ok(None) | Err(_) => {
                log("INFO", "the gateway closed the control pipe: shutting down");
                let _ = stop.send(true);
                return;
            }
        }
    }
}

/// Resolves on SIGTERM or when `read_tables` saw the gateway go.
pub async fn wait_stop(mut stop: watch::Receiver<bool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => log("INFO", "SIGTERM: draining"),
        _ = stop.wait_for(|s| *s) => {}
    }
}
