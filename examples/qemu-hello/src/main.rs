//! Proof firmware for the QEMU infrastructure (mps2-an386).
//!
//! 1. boots under embassy on the emulated Cortex-M4F;
//! 2. keeps a boot counter in the semihosting flash file `qemu-hello.flash` (erase + write, and
//!    checks that a write needing an erase, an unaligned one and one past the end are refused,
//!    and that a second flash erasing to 0x00 reads zeros when erased and only sets bits)
//!    and logs `boot N`: run QEMU twice and N goes 1 → 2;
//! 3. connects to the broker through UART0 (wired by QEMU to mosquitto's TCP port) with mqttrust,
//!    subscribes to `ota-rs/qemu-hello/in`, publishes `hello N` to `ota-rs/qemu-hello/out`;
//! 4. waits for one message on the subscribed topic, logs it, and exits QEMU with status 0.
//!
//! Any failure logs a line starting with `FAIL` and exits with a non-zero status.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::net::Ipv4Addr;

use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{with_timeout, Duration, Instant};
use embedded_storage_async::nor_flash::{NorFlash as _, ReadNorFlash as _};
use mqttrust::transport::embedded_nal::NalTransport;
use mqttrust::{Config, IpBroker, MqttStack, Publish, QoS, State, Subscribe};
use qemu_mps2::flash::{FlashError, SemihostingFlash};
use qemu_mps2::mqtt::SerialNetwork;
use qemu_mps2::semihosting::exit;
use qemu_mps2::uart::CmsdkUart;
use qemu_mps2::{log, machine};
use static_cell::StaticCell;

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "qemu-hello.flash";
/// 64 KiB of NOR: 4 KiB sectors, 4-byte write unit, erased to 0xFF.
type Flash = SemihostingFlash<4, 4096>;
const FLASH_SIZE: usize = 64 * 1024;
/// The boot counter's word, at the start of sector 0.
const BOOT_COUNTER: u32 = 0;
/// A second, 1 KiB flash that erases to 0x00, 8-byte write unit, 512-byte sectors.
const ZERO_FLASH_FILE: &str = "qemu-hello-zero.flash";

const TOPIC_OUT: &str = "ota-rs/qemu-hello/out";
const TOPIC_IN: &str = "ota-rs/qemu-hello/in";
/// How long (emulated time) to wait for the broker and for the reply.
const DEADLINE: Duration = Duration::from_secs(60);

type Network = SerialNetwork<CmsdkUart>;
static NETWORK: StaticCell<Network> = StaticCell::new();
static MQTT_STATE: StaticCell<State<NoopRawMutex, 1024, 1024>> = StaticCell::new();

fn fail(what: &str) -> ! {
    log!("FAIL: {}", what);
    exit(1)
}

/// Reads, increments and stores the boot counter; returns the new count.
async fn count_boot() -> Result<u32, FlashError> {
    let mut flash = Flash::open(FLASH_FILE, FLASH_SIZE, 0xFF)?;
    let mut word = [0u8; 4];
    flash.read(BOOT_COUNTER, &mut word).await?;
    let previous = match u32::from_le_bytes(word) {
        u32::MAX => 0, // erased: first boot
        n => n,
    };
    let count = previous.wrapping_add(1);
    flash.erase(0, 4096).await?;
    flash.write(BOOT_COUNTER, &count.to_le_bytes()).await?;

    // The NOR rules hold: n + 1 sets a bit that n has cleared, which needs an erase first;
    // writes off the 4-byte grid and past the end are refused; the stored count is unchanged.
    let next = count.wrapping_add(1).to_le_bytes();
    let refused = [
        flash.write(BOOT_COUNTER, &next).await == Err(FlashError::NeedsErase),
        flash.write(2, &[0, 0, 0, 0]).await == Err(FlashError::NotAligned),
        flash.write(FLASH_SIZE as u32, &[0, 0, 0, 0]).await == Err(FlashError::OutOfBounds),
    ];
    flash.read(BOOT_COUNTER, &mut word).await?;
    if refused != [true; 3] || u32::from_le_bytes(word) != count {
        log!("NOR rules not enforced: {:?}", refused);
        fail("flash semantics");
    }

    // A part that erases to 0x00 (PSoC 6): erased reads as zeros, writes only set bits.
    let mut zero = SemihostingFlash::<8, 512>::open(ZERO_FLASH_FILE, 1024, 0x00)?;
    zero.erase(0, 512).await?;
    let mut cells = [0xEE_u8; 8];
    zero.read(0, &mut cells).await?;
    let erased_ok = cells == [0; 8];
    zero.write(0, &[0x5A; 8]).await?;
    let clear_refused = zero.write(0, &[0x00; 8]).await == Err(FlashError::NeedsErase);
    zero.read(0, &mut cells).await?;
    if !erased_ok || !clear_refused || cells != [0x5A; 8] {
        fail("0x00-erased flash semantics");
    }
    Ok(count)
}

#[embassy_executor::task]
async fn mqtt_task(mut stack: MqttStack<'static, NoopRawMutex>, network: &'static Network) {
    let mut transport = NalTransport::new(network, IpBroker::new(Ipv4Addr::LOCALHOST, 1883));
    stack.run(&mut transport).await;
    fail("mqtt stack gave up reconnecting");
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken")
    };
    qemu_mps2::init(core.SYST);
    log!("qemu-hello on {}", machine::NAME);

    let boot = match count_boot().await {
        Ok(n) => n,
        Err(e) => {
            log!("flash error {:?}", e);
            fail("boot counter")
        }
    };
    log!("boot {}", boot);

    // SAFETY: UART0 is owned by the network from here on, nothing else touches it.
    let network: &'static Network = NETWORK.init(SerialNetwork::new(unsafe { CmsdkUart::uart0() }));
    let config = Config::builder()
        .client_id(heapless::String::try_from("qemu-hello").unwrap_or_default())
        .keepalive_interval(Duration::from_secs(30))
        .build();
    let (stack, client) = mqttrust::new(MQTT_STATE.init(State::new()), config);
    match mqtt_task(stack, network) {
        Ok(token) => spawner.spawn(token),
        Err(_) => fail("spawn mqtt task"),
    }

    let started = Instant::now();
    if with_timeout(DEADLINE, client.wait_connected())
        .await
        .is_err()
    {
        fail("no CONNACK from the broker");
    }
    log!(
        "connected after {} ms (emulated)",
        started.elapsed().as_millis()
    );

    let topics = [TOPIC_IN.into()];
    let mut subscription = match client
        .subscribe::<1>(Subscribe::builder().topics(&topics).build())
        .await
    {
        Ok(s) => s,
        Err(_) => fail("subscribe"),
    };
    log!("subscribed to {}", TOPIC_IN);

    let mut hello = heapless::String::<32>::new();
    let _ = write!(hello, "hello {}", boot);
    let publish = Publish::builder()
        .topic_name(TOPIC_OUT)
        .payload(hello.as_bytes())
        .qos(QoS::AtLeastOnce)
        .build();
    if client.publish(publish).await.is_err() {
        fail("publish");
    }
    log!("published '{}' to {}", hello, TOPIC_OUT);

    match with_timeout(DEADLINE, subscription.next_message()).await {
        Ok(Some(message)) => {
            let text = core::str::from_utf8(message.payload()).unwrap_or("<not utf-8>");
            log!("received '{}' on {}", text, message.topic_name());
        }
        Ok(None) => fail("subscription closed"),
        Err(_) => fail("no message on the subscribed topic"),
    }
    log!(
        "PASS boot {} after {} ms (emulated)",
        boot,
        started.elapsed().as_millis()
    );
    exit(0)
}
