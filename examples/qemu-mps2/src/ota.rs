//! The OTA application every board example runs: ota-core's agent and driver, MQTT through
//! mqttrust over the UART, and the board's PAL parts handed in by the example.
//!
//! A board example opens its flash file, builds its PAL (image storage, signature verifier,
//! boot control, download journal) with the board's layout, and calls [`run`]. From there:
//!
//! 1. the boot control's `platform_state()` is logged as `running version X.Y.Z state S`
//!    (the runners check this line after every boot);
//! 2. the mqttrust stack starts in its own task over [`SerialNetwork`] (QEMU wires UART0 to
//!    the broker's TCP port), and connects with the thing name as client id;
//! 3. the driver runs the agent: it asks for the next job, downloads the image block by block
//!    into the board's storage, verifies its signature with [`signer()`], asks the
//!    board's bootloader for a trial boot and resets; after the reset (a new QEMU run booted
//!    through the host-played bootloader) it self-tests ([`ExampleApp`]), confirms and reports
//!    SUCCEEDED, or rejects and reports FAILED;
//! 4. a reset is the end of the QEMU run: [`QemuReset`] logs [`RESET_LINE`] and the firmware
//!    exits with status 0, so that the runner plays the bootloader on the flash file and starts
//!    QEMU again. Any failure logs a `FAIL:` line and exits with status 1.
//!
//! With no job pending the agent waits for one forever, as on a device; the runners stop QEMU
//! once the cloud reports the job's outcome.
//!
//! The OTA code-signing public key is baked in at build time ([`crate::signer`]).

use core::net::Ipv4Addr;

use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Timer};
use mqttrust::transport::embedded_nal::NalTransport;
use mqttrust::{IpBroker, MqttStack, State};
use ota_core::agent::{Agent, Config, Instant};
use ota_core::driver::mqttrust::MqttrustClient;
use ota_core::driver::{Application, Clock, Driver, Exit, MqttClient, MqttMessage, NoHttp};
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::{
    BootControl, DownloadJournal, FlashJournal, ImageStorage, ImageVerifier, Reset,
};
use static_cell::{ConstStaticCell, StaticCell};

use crate::flash::SemihostingFlash;
use crate::mqtt::SerialNetwork;
use crate::semihosting::exit;
use crate::uart::CmsdkUart;
use crate::{log, machine};

pub use crate::fail;
pub use crate::flash::open_or_fail as open_flash;
pub use crate::signer::{key_bytes as signer_key, verifier as signer};

/// The line [`QemuReset`] logs before the firmware exits for a reboot.
pub const RESET_LINE: &str = "reset: reboot through the bootloader";

/// The agent as the examples size it: 1024 blocks (4 MiB files at 4 KiB blocks), MQTT only
/// (no URL buffer for the HTTP data path).
pub type ExampleAgent = Agent<128, 0>;

/// Stream block size asked for (the service's default).
pub const BLOCK_SIZE: u32 = 4096;

/// The driver's receive buffer and mqttrust's receive buffer: one 4 KiB block message (CBOR
/// map + topic) or one job document. mqttrust drops a publish larger than its buffer without
/// a word, so this bounds the job documents the examples accept too.
pub const RX_LEN: usize = BLOCK_SIZE as usize + 1500 + 30;

/// mqttrust's transmit buffer: the largest status update or stream request.
pub const TX_LEN: usize = 1024;

/// The flash file that holds the download journal: a small data flash of its own (4-byte
/// program units, 4 KiB sectors, erased to 0xFF), standing in for the board's data area.
pub type JournalFlash = SemihostingFlash<4, 4096>;

/// Bytes of the journal flash (two 8 KiB halves).
pub const JOURNAL_LEN: u32 = 16 * 1024;

/// The download journal in the host file `path` (created erased when missing), so that a
/// download cut by a QEMU stop resumes where it was.
pub fn journal(path: &str) -> FlashJournal<JournalFlash> {
    let flash: JournalFlash = open_flash(path, JOURNAL_LEN as usize, 0xFF);
    match FlashJournal::new(flash, 0, JOURNAL_LEN, 0xFF) {
        Ok(j) => j,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("FlashJournal::new")
        }
    }
}

/// `X.Y.Z` (missing or bad parts read 0), for versions baked in with `option_env!`.
pub fn parse_version(text: &str) -> AppVersion {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor, build) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    AppVersion::new(
        u8::try_from(major).unwrap_or(u8::MAX),
        u8::try_from(minor).unwrap_or(u8::MAX),
        u16::try_from(build).unwrap_or(u16::MAX),
    )
}

/// What [`run`] needs to know about the example besides its PAL parts.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The example's name, for the log.
    pub name: &'static str,
    /// The AWS IoT thing name (also the MQTT client id).
    pub thing: &'static str,
    /// The running version (what this build is).
    pub version: AppVersion,
    /// The job `fileType` of this board's firmware images.
    pub firmware_file_type: u32,
    /// Whether the self-test passes after a reboot into a new image (`false` shows the
    /// rollback).
    pub self_test_passes: bool,
}

/// The [`Example`] of the board example `example-<board>` (thing `ota-example-<board>`) whose
/// firmware images have job file type `$file_type`, with what the build baked in: the version
/// from `OTA_EXAMPLE_VERSION` (`0.0.0` without it) and a self-test that fails when
/// `OTA_EXAMPLE_SELF_TEST=fail`. A macro so that `option_env!` reads the example crate's build.
#[macro_export]
macro_rules! example {
    ($board:literal, $file_type:expr) => {
        $crate::ota::Example {
            name: concat!("example-", $board),
            thing: concat!("ota-example-", $board),
            version: $crate::ota::parse_version(match option_env!("OTA_EXAMPLE_VERSION") {
                Some(v) => v,
                None => "0.0.0",
            }),
            firmware_file_type: $file_type,
            self_test_passes: !matches!(option_env!("OTA_EXAMPLE_SELF_TEST"), Some("fail")),
        }
    };
}

/// embassy-time as the driver's clock, in milliseconds of emulated time.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now(&mut self) -> Instant {
        Instant(embassy_time::Instant::now().as_millis())
    }

    async fn sleep_until(&mut self, at: Instant) {
        Timer::at(embassy_time::Instant::from_millis(at.0)).await
    }
}

/// The application side: a self-test that passes or fails as built.
#[derive(Debug, Clone, Copy)]
pub struct ExampleApp {
    passes: bool,
}

impl Application for ExampleApp {
    async fn self_test(&mut self) -> bool {
        if self.passes {
            log!("self-test passed");
        } else {
            log!("self-test failed (built with OTA_EXAMPLE_SELF_TEST=fail)");
        }
        self.passes
    }
}

/// The reset: logs [`RESET_LINE`] and returns, so that the driver ends its run with
/// [`Exit::Reset`] and [`run`] exits QEMU (the runner then plays the bootloader and boots
/// again). By the time the agent resets, the cloud has acknowledged its last status.
#[derive(Debug, Clone, Copy, Default)]
pub struct QemuReset;

impl Reset for QemuReset {
    fn reset(&mut self) {
        log!("{}", RESET_LINE);
    }
}

/// The MQTT client as the driver sees it, with a log line for every job status the agent
/// sends (the `update` topics) and a count of the stream blocks received.
struct LoggedMqtt<C> {
    inner: C,
    blocks: u32,
}

impl<C: MqttClient> MqttClient for LoggedMqtt<C> {
    type Error = C::Error;

    async fn subscribe(&mut self, topic: &str, qos: Qos) -> Result<(), C::Error> {
        self.inner.subscribe(topic, qos).await
    }

    async fn unsubscribe(&mut self, topic: &str) -> Result<(), C::Error> {
        self.inner.unsubscribe(topic).await
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], qos: Qos) -> Result<(), C::Error> {
        if topic.ends_with("/update") {
            let text = core::str::from_utf8(payload).unwrap_or("(not UTF-8)");
            log!("job status after {} blocks: {}", self.blocks, text);
        }
        self.inner.publish(topic, payload, qos).await
    }

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, C::Error> {
        let message = self.inner.receive(buf).await?;
        if message.topic.contains("/streams/") && message.topic.ends_with("/data/cbor") {
            self.blocks = self.blocks.saturating_add(1);
        }
        Ok(message)
    }
}

type Network = SerialNetwork<CmsdkUart>;
static NETWORK: StaticCell<Network> = StaticCell::new();
static MQTT_STATE: StaticCell<State<NoopRawMutex, TX_LEN, RX_LEN>> = StaticCell::new();
static AGENT: StaticCell<ExampleAgent> = StaticCell::new();
static RX: ConstStaticCell<[u8; RX_LEN]> = ConstStaticCell::new([0; RX_LEN]);

#[embassy_executor::task]
async fn mqtt_task(mut stack: MqttStack<'static, NoopRawMutex>, network: &'static Network) {
    // The address is not used: QEMU's `-chardev socket` decides where UART0 goes.
    let mut transport = NalTransport::new(network, IpBroker::new(Ipv4Addr::LOCALHOST, 1883));
    stack.run(&mut transport).await;
    fail("the MQTT stack gave up (one connection per boot over the UART)")
}

/// How long the broker has to accept the connection, in emulated time.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);

/// Runs the OTA agent with the board's parts until it resets the device (exit 0 after
/// [`RESET_LINE`]) or fails (exit 1). Call once, from `main`, after `crate::init`.
pub async fn run<S, V, B, J>(
    spawner: Spawner,
    example: Example,
    storage: S,
    verifier: V,
    mut boot: B,
    journal: J,
) -> !
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
    J: DownloadJournal,
{
    let v = example.version;
    log!(
        "{} {}.{}.{} on {} as thing {}",
        example.name,
        v.major,
        v.minor,
        v.build,
        machine::NAME,
        example.thing
    );
    match boot.platform_state().await {
        Ok(state) => log!(
            "running version {}.{}.{} state {:?}",
            v.major,
            v.minor,
            v.build,
            state
        ),
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("platform_state")
        }
    }

    // SAFETY: UART0 belongs to the network from here on; nothing else touches it.
    let network: &'static Network = NETWORK.init(SerialNetwork::new(unsafe { CmsdkUart::uart0() }));
    let Ok(client_id) = heapless::String::try_from(example.thing) else {
        fail("the thing name is too long for mqttrust's client id")
    };
    let config = mqttrust::Config::builder()
        .client_id(client_id)
        .keepalive_interval(Duration::from_secs(30))
        .build();
    let (stack, client) = mqttrust::new(MQTT_STATE.init(State::new()), config);
    match mqtt_task(stack, network) {
        Ok(token) => spawner.spawn(token),
        Err(_) => fail("spawn the MQTT task"),
    }
    if embassy_time::with_timeout(CONNECT_WITHIN, client.wait_connected())
        .await
        .is_err()
    {
        fail("no MQTT connection within 30 s");
    }
    log!("connected to the broker");

    let mut config = Config::new(example.thing, example.version);
    config.block_size = BLOCK_SIZE;
    config.rx_buffer_len = RX_LEN as u32;
    config.firmware_file_type = example.firmware_file_type;
    let agent = match ExampleAgent::new(config) {
        Ok(a) => AGENT.init(a),
        Err(e) => {
            log!("agent configuration {:?}", e);
            fail("agent configuration")
        }
    };
    let mut driver = Driver::new(
        LoggedMqtt {
            inner: MqttrustClient::<_, 8>::new(&client),
            blocks: 0,
        },
        EmbassyClock,
        ExampleApp {
            passes: example.self_test_passes,
        },
        NoHttp,
        storage,
        verifier,
        boot,
        QemuReset,
        journal,
    );
    match driver.run(agent, RX.take()).await {
        Exit::Reset => exit(0),
        Exit::Mqtt(e) => {
            log!("MQTT error {:?}", e);
            fail("MQTT failed (one connection per boot over the UART)")
        }
    }
}
