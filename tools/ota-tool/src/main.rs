//! `ota`: keys and signatures, a local AWS IoT Jobs + MQTT Streams stand-in, and job management.
// The doc comments below are the `--help` text, where `<jobId>` reads as a placeholder.
#![allow(rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{ArgAction, Args, Parser, Subcommand};
use serde_json::{json, Value as Json};

use ota_tool::admin::AdminClient;
use ota_tool::cloud::{OtaFile, OtaUpdate, Protocol};
use ota_tool::keys;
use ota_tool::serve::{system_clock, MqttMode, ServeConfig, Server};

#[derive(Parser)]
#[command(
    name = "ota",
    version,
    about = "AWS IoT OTA on a workstation: keys, signatures, a local Jobs + Streams cloud, jobs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a P-256 key pair: PKCS#8 PEM private key and SPKI PEM public key.
    Keygen {
        /// Directory for ota-signing-key.pem and ota-signing-pub.pem (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a file (prints the base64 DER ECDSA-P256/SHA-256 signature for `sig-sha256-ecdsa`),
    /// or check a signature with --verify.
    Sign(SignArgs),
    /// Run the local AWS IoT Jobs + MQTT Streams stand-in, with an embedded MQTT broker (or an
    /// external one), presigned-style HTTP downloads and the admin API for `ota job`.
    Serve(ServeArgs),
    /// Emulate the AIROC CCM / AWS IoT ExpressLink module's UART (AT commands) on a loopback
    /// TCP port, with its cloud side local or over MQTT from `ota serve`.
    ModuleSim(ota_tool::module_sim::cli::ModuleSimArgs),
    /// Manage jobs of a running `ota serve`.
    Job {
        #[command(subcommand)]
        cmd: JobCmd,
    },
    /// Run a simulated device (the real agent, flash kept in --state) against a broker.
    Device(ota_tool::device::cli::DeviceArgs),
    /// Build a test image for `ota device` (version header; see the README for the format).
    Image(ota_tool::device::cli::ImageArgs),
    /// Watch a whole update on this machine: broker, stand-in and device in-process.
    Demo(ota_tool::demo::DemoArgs),
    /// OTA download throughput through mosquitto behind a loopback delay proxy, and the
    /// broker's raw publish throughput (see BENCHMARKS.md).
    Bench(ota_tool::bench::BenchArgs),
}

#[derive(Args)]
struct SignArgs {
    /// The file to sign or check.
    file: PathBuf,
    /// Private key (PKCS#8 or SEC1 PEM) to sign with.
    #[arg(
        long,
        required_unless_present = "verify",
        conflicts_with = "verify",
        value_name = "KEY.pem"
    )]
    key: Option<PathBuf>,
    /// Check a signature instead of making one.
    #[arg(long, requires_all = ["pubkey", "signature"])]
    verify: bool,
    /// Public key (SPKI PEM) for --verify.
    #[arg(long, value_name = "PUB.pem")]
    pubkey: Option<PathBuf>,
    /// Base64 DER signature for --verify.
    #[arg(long, value_name = "B64")]
    signature: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the embedded MQTT broker.
    #[arg(long, default_value = "127.0.0.1:1883", value_name = "ADDR")]
    listen: SocketAddr,
    /// Use an external MQTT broker at HOST:PORT (e.g. mosquitto) instead of the embedded one.
    /// Jobs replies then reach subscribers only.
    #[arg(long, value_name = "HOST:PORT")]
    broker: Option<String>,
    /// Deliver Jobs replies ($next/get/accepted, <jobId>/update/accepted|rejected) to the
    /// requesting client even when it did not subscribe, as AWS IoT does (embedded broker only).
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "true|false")]
    aws_reply_delivery: bool,
    /// Address of the HTTP download server (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    http_listen: SocketAddr,
    /// Address of the admin API (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    admin_listen: SocketAddr,
    /// A thing group, NAME=thing1,thing2 (repeatable).
    #[arg(long = "group", value_name = "NAME=THINGS")]
    groups: Vec<String>,
    /// Lifetime of presigned download URLs, in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    url_expiry: u64,
    /// Directory where server.json (addresses, admin token) is written.
    #[arg(long, default_value = ".ota", value_name = "DIR")]
    state: PathBuf,
    /// Do not print a line per device request.
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum JobCmd {
    /// Create an OTA job (like `aws iot create-ota-update`): a stream and HTTP URL per file,
    /// and a job AFR_OTA-<id> for the targets.
    Create(CreateArgs),
    /// Cancel a job: QUEUED executions become CANCELED (with --force, IN_PROGRESS ones too);
    /// notify-next goes to the things whose next job changed.
    Cancel {
        /// The job id (AFR_OTA-...).
        job_id: String,
        /// Cancel IN_PROGRESS executions as well.
        #[arg(long)]
        force: bool,
        /// State directory of the server.
        #[arg(long, default_value = ".ota", value_name = "DIR")]
        state: PathBuf,
    },
    /// List jobs with execution counts per status.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// State directory of the server.
        #[arg(long, default_value = ".ota", value_name = "DIR")]
        state: PathBuf,
    },
    /// Show a job: its executions with statusDetails, and its document.
    Show {
        /// The job id (AFR_OTA-...).
        job_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// State directory of the server.
        #[arg(long, default_value = ".ota", value_name = "DIR")]
        state: PathBuf,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// Target thing (repeatable).
    #[arg(long = "thing", value_name = "THING")]
    things: Vec<String>,
    /// Target thing group (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Image file (repeatable for multi-file jobs; file ids follow the order).
    #[arg(long = "file", required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Base64 signature, one per --file in order.
    #[arg(long = "signature", conflicts_with = "sign_key", value_name = "B64")]
    signatures: Vec<String>,
    /// Sign every file with this private key.
    #[arg(long, value_name = "KEY.pem")]
    sign_key: Option<PathBuf>,
    /// Create the job without signatures ("sig-sha256-ecdsa": null), to test rejection.
    #[arg(long, conflicts_with_all = ["signatures", "sign_key"])]
    unsigned: bool,
    /// fileType, once for all files or once per file.
    #[arg(long = "file-type", value_name = "N")]
    file_types: Vec<u32>,
    /// filepath on the device, once per file (default: the file's name).
    #[arg(long = "path", value_name = "FILEPATH")]
    paths: Vec<String>,
    /// certfile (signer certificate path on the device), once for all files or once per file.
    #[arg(long = "cert-file", value_name = "CERTFILE")]
    cert_files: Vec<String>,
    /// Data protocols, comma separated.
    #[arg(
        long,
        default_value = "MQTT",
        value_delimiter = ',',
        value_name = "MQTT,HTTP"
    )]
    protocols: Vec<String>,
    /// OTA update id (the job is AFR_OTA-<id>); default: a random UUID.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// State directory of the server.
    #[arg(long, default_value = ".ota", value_name = "DIR")]
    state: PathBuf,
}

/// The value for file `i` of a list given once for all or once per file.
fn per_file<T: Clone>(what: &str, v: &[T], i: usize, n: usize) -> Result<Option<T>> {
    match v.len() {
        0 => Ok(None),
        1 => Ok(v.first().cloned()),
        k if k == n => Ok(v.get(i).cloned()),
        k => bail!("{k} {what} values for {n} files: give one, or one per file"),
    }
}

fn build_update(a: &CreateArgs) -> Result<OtaUpdate> {
    if a.things.is_empty() && a.groups.is_empty() {
        bail!("give at least one --thing or --group");
    }
    let n = a.files.len();
    if !a.signatures.is_empty() && a.signatures.len() != n {
        bail!(
            "{} --signature values for {n} files: give one per file",
            a.signatures.len()
        );
    }
    if a.signatures.is_empty() && a.sign_key.is_none() && !a.unsigned {
        bail!("give --signature, --sign-key or --unsigned");
    }
    if a.paths.len() > 1 && a.paths.len() != n || a.paths.len() == 1 && n > 1 {
        bail!(
            "{} --path values for {n} files: give one per file",
            a.paths.len()
        );
    }
    let key = a
        .sign_key
        .as_deref()
        .map(keys::read_signing_key)
        .transpose()?;
    let mut files = Vec::new();
    for (i, path) in a.files.iter().enumerate() {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let signature = match (&key, a.signatures.get(i)) {
            (Some(k), _) => Some(keys::sign(k, &data)),
            (None, Some(s)) => {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .with_context(|| format!("--signature for {} is not base64", path.display()))?;
                Some(s.clone())
            }
            (None, None) => None,
        };
        let filepath = a
            .paths
            .get(i)
            .cloned()
            .or_else(|| path.file_name().map(|f| f.to_string_lossy().into_owned()));
        files.push(OtaFile {
            data,
            filepath,
            file_type: per_file("--file-type", &a.file_types, i, n)?,
            cert_file: per_file("--cert-file", &a.cert_files, i, n)?,
            signature,
        });
    }
    let protocols = a
        .protocols
        .iter()
        .map(|p| match p.to_ascii_uppercase().as_str() {
            "MQTT" => Ok(Protocol::Mqtt),
            "HTTP" => Ok(Protocol::Http),
            other => bail!("unknown protocol '{other}' (MQTT or HTTP)"),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(OtaUpdate {
        id: a.id.clone(),
        things: a.things.clone(),
        groups: a.groups.clone(),
        protocols,
        files,
    })
}

fn print_show(v: &Json) {
    println!(
        "job {}  status {}",
        v["jobId"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?")
    );
    if let Some(s) = v["stream"].as_str() {
        println!("stream {s}");
    }
    println!(
        "{:<24} {:<12} {:>7}  statusDetails",
        "thing", "status", "version"
    );
    for e in v["executions"].as_array().into_iter().flatten() {
        let details = e["statusDetails"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!(
            "{:<24} {:<12} {:>7}  {details}",
            e["thingName"].as_str().unwrap_or("?"),
            e["status"].as_str().unwrap_or("?"),
            e["versionNumber"]
        );
    }
    println!("document {}", v["document"]);
}

fn parse_group(s: &str) -> Result<(String, Vec<String>)> {
    let (name, things) = s
        .split_once('=')
        .with_context(|| format!("--group {s}: expected NAME=thing1,thing2"))?;
    Ok((
        name.to_string(),
        things
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

async fn serve(a: ServeArgs) -> Result<()> {
    let mqtt = match &a.broker {
        Some(b) => {
            let (host, port) = b
                .rsplit_once(':')
                .with_context(|| format!("--broker {b}: expected HOST:PORT"))?;
            MqttMode::External {
                host: host.to_string(),
                port: port
                    .parse()
                    .with_context(|| format!("--broker {b}: bad port"))?,
            }
        }
        None => MqttMode::Embedded {
            bind: a.listen,
            aws_reply_delivery: a.aws_reply_delivery,
        },
    };
    let cfg = ServeConfig {
        mqtt,
        http_bind: a.http_listen,
        admin_bind: a.admin_listen,
        groups: a
            .groups
            .iter()
            .map(|g| parse_group(g))
            .collect::<Result<_>>()?,
        url_ttl_secs: a.url_expiry,
        state_dir: Some(a.state.clone()),
        clock: system_clock(),
        log: !a.quiet,
    };
    let server = Server::start(cfg).await?;
    let info = server.info();
    if info.embedded_broker {
        println!(
            "MQTT broker    {} (embedded; AWS reply delivery {})",
            info.mqtt,
            if a.aws_reply_delivery { "on" } else { "off" }
        );
    } else {
        println!(
            "MQTT broker    {} (external; Jobs replies reach subscribers only)",
            info.mqtt
        );
    }
    println!("HTTP downloads {}", info.http);
    println!(
        "admin API      {} (recorded in {})",
        info.admin,
        a.state.join("server.json").display()
    );
    println!("ready; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    drop(server);
    Ok(())
}

fn client(state: &Path) -> Result<AdminClient> {
    AdminClient::from_state(state)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Keygen { out } => {
            let (sk, pk) = keys::keygen(&out)?;
            println!("private key {}", sk.display());
            println!("public key  {}", pk.display());
        }
        Cmd::Sign(a) => {
            let data =
                std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
            if a.verify {
                let (Some(pk), Some(sig)) = (a.pubkey, a.signature) else {
                    bail!("--verify needs --pubkey and --signature");
                };
                keys::verify(&keys::read_verifying_key(&pk)?, &data, &sig)?;
                println!("signature OK");
            } else {
                let Some(k) = a.key else { bail!("give --key") };
                println!("{}", keys::sign(&keys::read_signing_key(&k)?, &data));
            }
        }
        Cmd::Serve(a) => {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(serve(a))?;
        }
        Cmd::ModuleSim(a) => {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(ota_tool::module_sim::cli::run(a))?;
        }
        Cmd::Device(a) => ota_tool::device::cli::main(a)?,
        Cmd::Demo(a) => ota_tool::demo::main(a)?,
        Cmd::Bench(a) => ota_tool::bench::main(a)?,
        Cmd::Image(a) => ota_tool::device::cli::make_image(a)?,
        Cmd::Job { cmd } => match cmd {
            JobCmd::Create(a) => {
                let update = build_update(&a)?;
                let v = client(&a.state)?.call(
                    "POST",
                    "/jobs",
                    Some(&serde_json::to_value(&update)?),
                )?;
                println!("{}", v["jobId"].as_str().unwrap_or_default());
            }
            JobCmd::Cancel {
                job_id,
                force,
                state,
            } => {
                let v = client(&state)?.call(
                    "POST",
                    &format!("/jobs/{job_id}/cancel"),
                    Some(&json!({ "force": force })),
                )?;
                println!("{} {}", job_id, v["status"].as_str().unwrap_or_default());
            }
            JobCmd::List { json, state } => {
                let v = client(&state)?.call("GET", "/jobs", None)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    for j in v.as_array().into_iter().flatten() {
                        let counts = j["executions"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| format!("{k}:{v}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            })
                            .unwrap_or_default();
                        println!(
                            "{:<48} {:<12} {counts}",
                            j["jobId"].as_str().unwrap_or("?"),
                            j["status"].as_str().unwrap_or("?")
                        );
                    }
                }
            }
            JobCmd::Show {
                job_id,
                json,
                state,
            } => {
                let v = client(&state)?.call("GET", &format!("/jobs/{job_id}"), None)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print_show(&v);
                }
            }
        },
    }
    Ok(())
}
