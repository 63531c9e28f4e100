//! `agent-min-mqtt`: `agent-min` with a real MQTT client instead of the stub: ota-core's
//! `MqttrustClient` over mqttrust 1.0, its stack running over QEMU's UART
//! (`qemu_mps2::mqtt::SerialNetwork`) on the embassy executor that mqttrust's timers need.
//! The PAL stays no-op. Subtract `agent-min` for what MQTT costs.
//!
//! Built by `scripts/size-report.sh` for its size only: running it needs a broker on the
//! UART (the `-chardev socket` set-up of `examples/run-qemu.sh`), which the report does not
//! start. Nothing in it is constant: the stack reads the UART, so the linker keeps it all.
#![no_std]
#![no_main]

use core::net::Ipv4Addr;

use agent_min::{
    fail, MinAgent, NullApp, NullBoot, NullJournal, NullReset, NullStorage, NullVerifier, RX_LEN,
};
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Timer};
use mqttrust::transport::embedded_nal::NalTransport;
use mqttrust::{IpBroker, MqttStack, State};
use ota_core::agent::{Config, Instant};
use ota_core::driver::mqttrust::MqttrustClient;
use ota_core::driver::{Clock, Driver, NoHttp};
use ota_core::wire::version::AppVersion;
use qemu_mps2::mqtt::SerialNetwork;
use qemu_mps2::uart::CmsdkUart;
use static_cell::{ConstStaticCell, StaticCell};

const NAME: &str = "agent-min-mqtt";

type Network = SerialNetwork<CmsdkUart>;
static NETWORK: StaticCell<Network> = StaticCell::new();
/// mqttrust's buffers: RX holds one block message or job document (it drops larger
/// publishes), TX the largest request or status update.
static MQTT_STATE: StaticCell<State<NoopRawMutex, 1024, RX_LEN>> = StaticCell::new();
static AGENT: StaticCell<MinAgent> = StaticCell::new();
static RX: ConstStaticCell<[u8; RX_LEN]> = ConstStaticCell::new([0; RX_LEN]);

/// embassy-time as the driver's clock (milliseconds).
struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now(&mut self) -> Instant {
        Instant(embassy_time::Instant::now().as_millis())
    }

    async fn sleep_until(&mut self, at: Instant) {
        Timer::at(embassy_time::Instant::from_millis(at.0)).await
    }
}

#[embassy_executor::task]
async fn mqtt_task(mut stack: MqttStack<'static, NoopRawMutex>, network: &'static Network) {
    let mut transport = NalTransport::new(network, IpBroker::new(Ipv4Addr::LOCALHOST, 1883));
    stack.run(&mut transport).await;
    fail(NAME, "mqtt stack gave up")
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail(NAME, "core peripherals taken")
    };
    qemu_mps2::init(core.SYST);
    // SAFETY: UART0 is owned by the network from here on, nothing else touches it.
    let network: &'static Network = NETWORK.init(SerialNetwork::new(unsafe { CmsdkUart::uart0() }));
    let config = mqttrust::Config::builder()
        .client_id(heapless::String::try_from("agent-min").unwrap_or_default())
        .keepalive_interval(Duration::from_secs(30))
        .build();
    let (stack, client) = mqttrust::new(MQTT_STATE.init(State::new()), config);
    match mqtt_task(stack, network) {
        Ok(token) => spawner.spawn(token),
        Err(_) => fail(NAME, "spawn mqtt task"),
    }
    client.wait_connected().await;

    let Ok(agent) = MinAgent::new(Config::new("agent-min", AppVersion::new(1, 0, 0))) else {
        fail(NAME, "agent config")
    };
    let agent = AGENT.init(agent);
    let mut driver = Driver::new(
        MqttrustClient::<_, 8>::new(&client),
        EmbassyClock,
        NullApp,
        NoHttp,
        NullStorage,
        NullVerifier,
        NullBoot,
        NullReset,
        NullJournal,
    );
    let _ = driver.run(agent, RX.take()).await;
    fail(NAME, "Driver::run returned")
}
