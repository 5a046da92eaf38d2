//! apt-client: the APT gateway driven from Rust (tonic) with nothing but proto/ — what any
//! client in another language does. Over TLS (a CA-signed leaf certificate), token in the
//! `authorization` metadata, jobs followed with WatchJob, errors decoded from their
//! google.rpc.Status details (docs/api.md).
//!
//! usage: APT_TOKEN=... apt-client --gateway https://HOST:PORT --ca CA.pem COMMAND
//!   plugins                      the plugins and their status
//!   train NAME DATASET           train a tiny model on a store dataset, follow the job
//!   prune SOURCE OUTPUT          magnitude-prune a store model (model-pruning plugin), follow the job,
//!                                and decode its typed result (Job.response, a PruneResult)
//!   info NAME                    a model's info, or the error's details when it fails
//! Every result is one JSON line on stdout; an error is one JSON line with its code, message,
//! reason, domain, request id and field violations, and exit status 1.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Status};
use tonic_types::StatusExt;

pub mod apt {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("apt.common.v1");
        }
    }
    pub mod gateway {
        pub mod v1 {
            tonic::include_proto!("apt.gateway.v1");
        }
    }
    pub mod options {
        pub mod v1 {
            tonic::include_proto!("apt.options.v1");
        }
    }
    pub mod plugin {
        pub mod v1 {
            tonic::include_proto!("apt.plugin.v1");
        }
    }
    pub mod plugins {
        pub mod model_pruning {
            pub mod v1 {
                tonic::include_proto!("apt.plugins.model_pruning.v1");
            }
        }
    }
}

use apt::common::v1::{Job, JobState, WatchJobRequest};
use apt::gateway::v1::core_client::CoreClient;
use apt::gateway::v1::plugin_registry_client::PluginRegistryClient;
use apt::gateway::v1::{GetModelInfoRequest, ListPluginsRequest, PluginStatus, TrainRequest};
use apt::plugin::v1::jobs_client::JobsClient;
use apt::plugins::model_pruning::v1::pruning_client::PruningClient;
use apt::plugins::model_pruning::v1::{PruneRequest, PruneResult};
use prost::Message;

type Authed = tonic::service::interceptor::InterceptedService<Channel, Auth>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Auth(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

struct Args {
    gateway: String,
    ca: String,
    command: Vec<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!("apt-client: {msg}\nusage: APT_TOKEN=... apt-client --gateway https://HOST:PORT --ca CA.pem \
               (plugins | train NAME DATASET | prune SOURCE OUTPUT | info NAME)");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args { gateway: String::new(), ca: String::new(), command: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gateway" => args.gateway = it.next().unwrap_or_else(|| usage("--gateway needs a value")),
            "--ca" => args.ca = it.next().unwrap_or_else(|| usage("--ca needs a value")),
            _ => args.command.push(a),
        }
    }
    if args.gateway.is_empty() || args.ca.is_empty() || args.command.is_empty() {
        usage("--gateway, --ca and a command are required");
    }
    args
}

/// JSON text of a string (the few fields printed here are plain values).
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}: {}", quote(k), v)).collect();
    format!("{{{}}}", body.join(", "))
}

/// A google.protobuf.Value as JSON (job results are Structs: numbers are doubles).
fn value_json(v: &prost_types::Value) -> String {
    use prost_types::value::Kind;
    match &v.kind {
        Some(Kind::NullValue(_)) | None => "null".into(),
        Some(Kind::NumberValue(n)) if n.is_finite() => format!("{n}"),
        Some(Kind::NumberValue(_)) => "null".into(),
        Some(Kind::StringValue(s)) => quote(s),
        Some(Kind::BoolValue(b)) => format!("{b}"),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => format!("[{}]", l.values.iter().map(value_json).collect::<Vec<_>>().join(", ")),
    }
}

fn struct_json(s: &prost_types::Struct) -> String {
    let sorted: BTreeMap<_, _> = s.fields.iter().collect();
    let body: Vec<String> = sorted.iter().map(|(k, v)| format!("{}: {}", quote(k), value_json(v))).collect();
    format!("{{{}}}", body.join(", "))
}

/// The error as one JSON line: code, message and the standard details the platform sends.
fn error_json(status: &Status) -> String {
    let details = status.get_error_details();
    let (reason, domain) = details
        .error_info()
        .map(|i| (i.reason.clone(), i.domain.clone()))
        .unwrap_or_default();
    let request_id = details.request_info().map(|r| r.request_id.clone()).unwrap_or_default();
    let fields: Vec<String> = details
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| quote(&v.field)).collect())
        .unwrap_or_default();
    object(&[
        ("error", quote(&format!("{:?}", status.code()))),
        ("message", quote(status.message())),
        ("reason", quote(&reason)),
        ("domain", quote(&domain)),
        ("request_id", quote(&request_id)),
        ("fields", format!("[{}]", fields.join(", "))),
    ])
}

/// Follow a job (routed by the gateway by its id's service prefix) to its end.
async fn follow(jobs: &mut JobsClient<Authed>, job: Job) -> Result<Job, Status> {
    let mut stream = jobs.watch_job(WatchJobRequest { id: job.id.clone() }).await?.into_inner();
    let mut last = job;
    while let Some(snapshot) = stream.message().await? {
        last = snapshot;
    }
    Ok(last)
}

/// A finished job: its id, state, the Struct view of its result (`result`) or its error.
fn job_fields(job: &Job) -> Vec<(&'static str, String)> {
    let state = JobState::try_from(job.state).map(|s| s.as_str_name().to_owned()).unwrap_or_default();
    let mut fields = vec![("job", quote(&job.id)), ("state", quote(&state))];
    if let Some(result) = &job.result {
        fields.push(("result", struct_json(result)));
    }
    if let Some(err) = &job.error {
        fields.push(("job_error", object(&[("code", quote(&err.code)), ("message", quote(&err.message))])));
    }
    fields
}

fn job_json(job: &Job) -> String {
    object(&job_fields(job))
}

/// A job's typed result (`Job.response`, a google.protobuf.Any) as the message its start method
/// declares: the type URL names it, the bytes decode into the generated type.
fn unpack<M: Message + Default>(job: &Job, type_name: &str) -> Result<M, Status> {
    // unset only on jobs of a service built before typed results: read `result` there
    let any = job.response.as_ref().ok_or_else(|| {
        Status::failed_precondition(format!("job {} has no typed result (Job.response); read Job.result", job.id))
    })?;
    if any.type_url.rsplit('/').next() != Some(type_name) {
        return Err(Status::internal(format!("job {}'s result is a {}, not a {type_name}", job.id, any.type_url)));
    }
    M::decode(any.value.as_slice())
        .map_err(|e| Status::internal(format!("job {}'s {type_name} does not decode: {e}", job.id)))
}

/// A few fields of a PruneResult, as typed values: integers print as integers.
fn prune_json(r: &PruneResult) -> String {
    let params = |m: &Option<apt::plugins::model_pruning::v1::PruneMeasurement>| {
        m.as_ref().and_then(|m| m.parameters.as_ref()).cloned().unwrap_or_default()
    };
    let (before, after) = (params(&r.before), params(&r.after));
    object(&[
        ("output", quote(&r.output)),
        ("parameters_before", before.total.to_string()),
        ("parameters_after", after.total.to_string()),
        ("nonzero_after", after.nonzero.to_string()),
        ("ratio_achieved", format!("{}", r.ratio_achieved)),
        ("reload_finite", r.reload.as_ref().map(|c| c.finite).unwrap_or(false).to_string()),
        ("layers", r.sparsity_by_layer.len().to_string()),
    ])
}

async fn run(args: Args, channel: Channel, auth: Auth) -> Result<String, Status> {
    let mut core = CoreClient::with_interceptor(channel.clone(), auth.clone());
    let mut jobs = JobsClient::with_interceptor(channel.clone(), auth.clone());
    let cmd: Vec<&str> = args.command.iter().map(String::as_str).collect();
    match cmd.as_slice() {
        ["plugins"] => {
            let mut registry = PluginRegistryClient::with_interceptor(channel, auth);
            let reply = registry.list_plugins(ListPluginsRequest::default()).await?.into_inner();
            let rows: Vec<String> = reply
                .plugins
                .iter()
                .map(|p| {
                    let status = PluginStatus::try_from(p.status).map(|s| s.as_str_name().to_owned()).unwrap_or_default();
                    object(&[("name", quote(&p.name)), ("status", quote(&status))])
                })
                .collect();
            Ok(object(&[("plugins", format!("[{}]", rows.join(", ")))]))
        }
        ["train", name, dataset] => {
            let request = TrainRequest {
                name: name.to_string(),
                size: "tiny".into(),
                dataset: dataset.to_string(),
                vocab_size: 320,
                seq_len: 32,
                batch_size: 4,
                max_steps: 5,
                eval_every: 5,
                ..Default::default()
            };
            let job = core.start_train(request).await?.into_inner();
            Ok(job_json(&follow(&mut jobs, job).await?))
        }
        ["prune", source, output] => {
            let mut pruning = PruningClient::with_interceptor(channel, auth);
            let request = PruneRequest {
                name: source.to_string(),
                output_name: output.to_string(),
                strategy: "magnitude".into(),
                ratio: 0.5,
                ..Default::default()
            };
            let job = follow(&mut jobs, pruning.start_prune(request).await?.into_inner()).await?;
            let mut fields = job_fields(&job);
            if job.state == JobState::Succeeded as i32 {
                let typed: PruneResult = unpack(&job, "apt.plugins.model_pruning.v1.PruneResult")?;
                fields.push(("typed", prune_json(&typed)));
            }
            Ok(object(&fields))
        }
        ["info", name] => {
            let info = core
                .get_model_info(GetModelInfoRequest { name: name.to_string(), training_log: false })
                .await?
                .into_inner();
            Ok(object(&[("name", quote(&info.name)), ("parameters", info.parameters.to_string()),
                        ("architecture", quote(&info.architecture))]))
        }
        _ => usage("unknown command"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let token = std::env::var("APT_TOKEN").unwrap_or_else(|_| usage("set APT_TOKEN"));
    let ca = std::fs::read(&args.ca).unwrap_or_else(|e| usage(&format!("cannot read {}: {e}", args.ca)));
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    let endpoint = Channel::from_shared(args.gateway.clone())
        .unwrap_or_else(|e| usage(&format!("bad --gateway: {e}")))
        .tls_config(tls)
        .unwrap_or_else(|e| usage(&format!("TLS: {e}")))
        .timeout(Duration::from_secs(300));
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apt-client: cannot reach {}: {e:?}", args.gateway);
            std::process::exit(5)
        }
    };
    let auth = Auth(format!("Bearer {token}").parse().unwrap_or_else(|_| usage("the token is not ASCII")));
    match run(args, channel, auth).await {
        Ok(line) => println!("{line}"),
        Err(status) => {
            println!("{}", error_json(&status));
            std::process::exit(1)
        }
    }
}
