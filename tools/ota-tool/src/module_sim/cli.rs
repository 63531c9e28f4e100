//! The `ota module-sim` command line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use base64::Engine as _;
use clap::Args;

use super::cloud::{JobKind, LocalCloud, ModuleCloud, Proposal};
use super::config::{Dialect, Fault, OtaEventParam, SimConfig};
use super::emulator::Emulator;

/// `ota module-sim` options.
#[derive(Args, Debug)]
pub struct ModuleSimArgs {
    /// Address of the UART's TCP listener (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Get jobs from `ota serve` over MQTT at HOST:PORT (its embedded broker, or the external
    /// broker it uses). Without it, the jobs given with --host-image / --module-image are used.
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<String>,
    /// The module's thing name.
    #[arg(long, default_value = "modsim", value_name = "NAME")]
    pub thing: String,
    /// Dialect emitted: ccm (PG v0.5 / AIROC CCM) or v1.3.
    #[arg(long, default_value = "ccm", value_name = "ccm|v1.3")]
    pub dialect: Dialect,
    /// Inject a fault (repeatable): corrupt-checksum=N, corrupt-data=N, short-read=BYTES,
    /// drop-response=N, truncate=N, no-eol=N, late=N:MS, blank-line=N, reset-at=OFFSET,
    /// err=VERB:CODE or err=VERB:CODE@N (VERB: accept, read, seek, apply, close, flush, connect).
    #[arg(long = "fault", value_name = "KIND=VALUE")]
    pub faults: Vec<Fault>,
    /// The module firmware version at power-on.
    #[arg(
        long = "module-version",
        default_value = "1.0.0",
        value_name = "VERSION"
    )]
    pub version: String,
    /// The OTA event's parameter: zero, state or absent (default: absent on ccm, zero on v1.3).
    #[arg(long, value_name = "zero|state|absent")]
    pub ota_event_param: Option<OtaEventParam>,
    /// READ checksum width, 2 or 4 hex digits (default: 2 on ccm, 4 on v1.3).
    #[arg(long, value_name = "2|4")]
    pub checksum_digits: Option<u8>,
    /// MaxOTARead: the most bytes one READ returns.
    #[arg(long, default_value_t = 2048, value_name = "BYTES")]
    pub max_ota_read: usize,
    /// Drop the OTA state and buffer on a module reset (default: they persist).
    #[arg(long)]
    pub no_persist_ota: bool,
    /// Local cloud: a host image (file type 202) to propose once the module connects.
    #[arg(long, value_name = "FILE")]
    pub host_image: Option<PathBuf>,
    /// Local cloud: the host image's base64 DER signature (checked by the module when
    /// HOTAcertificate is set).
    #[arg(long, value_name = "B64", requires = "host_image")]
    pub host_signature: Option<String>,
    /// Local cloud: the host job's metadata (the `OTA?` detail in state 2).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub host_metadata: String,
    /// Local cloud: a module image (file type 101) to propose once the module connects.
    #[arg(long, value_name = "FILE", requires = "new_module_version")]
    pub module_image: Option<PathBuf>,
    /// Local cloud: the version the module image installs.
    #[arg(long, value_name = "VERSION")]
    pub new_module_version: Option<String>,
    /// Do not print a line per module action.
    #[arg(long)]
    pub quiet: bool,
}

impl ModuleSimArgs {
    /// The emulator settings.
    pub fn config(&self) -> SimConfig {
        let mut cfg = SimConfig::new(self.dialect, &self.thing);
        cfg.version = self.version.clone();
        if let Some(p) = self.ota_event_param {
            cfg.ota_event_param = p;
        }
        if let Some(d) = self.checksum_digits {
            cfg.checksum_digits = d;
        }
        cfg.max_ota_read = self.max_ota_read;
        cfg.persist_ota = !self.no_persist_ota;
        cfg.faults = self.faults.clone();
        cfg
    }

    /// The local cloud with the jobs given on the command line.
    pub fn local_cloud(&self) -> Result<LocalCloud> {
        let cloud = LocalCloud::new();
        if let Some(path) = &self.module_image {
            let image =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            cloud.push_job(
                Proposal {
                    job_id: "local-module".into(),
                    kind: JobKind::Module,
                    version: self.new_module_version.clone().unwrap_or_default(),
                    metadata: String::new(),
                    signature: None,
                },
                image,
            );
        }
        if let Some(path) = &self.host_image {
            let image =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let signature = match &self.host_signature {
                Some(b) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .context("--host-signature: not base64")?,
                ),
                None => None,
            };
            cloud.push_job(
                Proposal {
                    job_id: "local-host".into(),
                    kind: JobKind::Host,
                    version: String::new(),
                    metadata: self.host_metadata.clone(),
                    signature,
                },
                image,
            );
        }
        Ok(cloud)
    }
}

/// Run `ota module-sim` until interrupted.
pub async fn run(a: ModuleSimArgs) -> Result<()> {
    let cloud: Box<dyn ModuleCloud> = match &a.broker {
        Some(b) => Box::new(super::mqtt::MqttCloud::start(b, &a.thing, &a.version)?),
        None => Box::new(a.local_cloud()?),
    };
    let emu = Arc::new(Mutex::new(Emulator::new(a.config(), cloud)));
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    println!(
        "module-sim listening on {} (thing {}, dialect {:?})",
        listener.local_addr()?,
        a.thing,
        a.dialect
    );
    std::io::stdout().flush()?;
    tokio::select! {
        r = super::server::serve(listener, emu, !a.quiet) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
