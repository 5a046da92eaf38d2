//! Command-line arguments (the gateway starts apt-router with them; see `usage`).

use std::time::Duration;

pub struct Args {
    pub listen: String,
    pub backend: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub grace: Duration,
}

/// Print what went wrong and the usage to stderr, and exit with status 2.
pub fn usage(err: &str) -> ! {
    eprintln!(
        "apt-router: {err}\n\nusage: apt-router --listen HOST:PORT --backend HOST:PORT [--tls-cert PEM --tls-key PEM] \
         [--grace SECONDS]\nenv: APT_TOKEN, APT_ADMIN_TOKEN (accepted from callers), APT_INTERNAL_TOKEN (sent to plugins),\n     APT_LOG_LEVEL (default INFO), APT_ROUTER_THREADS (default 1)\n\
         Started by the gateway (APT_ROUTER=native); route tables arrive on stdin as JSON lines."
    );
    std::process::exit(2)
}

pub fn parse_args() -> Args {
    let mut args = Args { listen: String::new(), backend: String::new(), tls_cert: None, tls_key: None,
                          grace: Duration::from_secs(10) };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => args.listen = value(),
            "--backend" => args.backend = value(),
            "--tls-cert" => args.tls_cert = Some(value()),
            "--tls-key" => args.tls_key = Some(value()),
            "--grace" => {
                let v = value();
                let secs: f64 = v.parse().unwrap_or_else(|_| usage(&format!("--grace {v:?} is not a number")));
                args.grace = Duration::from_secs_f64(secs.max(0.0));
            }
            "-h" | "--help" => usage("the gateway's data plane"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if args.listen.is_empty() || args.backend.is_empty() {
        usage("--listen and --backend are required");
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        usage("--tls-cert and --tls-key go together");
    }
    args
}
