//! A thin async driver for the [`Agent`]: it feeds the machine from an
//! MQTT client, a clock and the PAL, and executes the machine's commands.
//!
//! No executor and no feature flag: [`Driver::run`] is a plain `async fn` that waits on "next
//! message OR next deadline" with the tiny [`select`] of this module, so it runs on embassy,
//! RTIC, a bare `block_on` or tokio alike.
//!
//! What the driver adds to the machine:
//!
//! - a block is written to [`ImageStorage`] **and** recorded in the [`DownloadJournal`] before
//!   the machine hears it landed (a power cut never loses a block the journal reports);
//! - blocks are hashed on the fly while they arrive in order, and at the end only the rest is
//!   read back ([`verify_stored_image`]);
//! - [`Reset::reset`] returning (a simulation) ends the run with [`Exit::Reset`], so a test
//!   "reboots" by building a new agent and running again.
//!
//! Contract for [`MqttClient::receive`]: it must be cancel-safe (the driver drops it when a
//! deadline comes first) and must deliver whole messages; a message larger than the buffer is
//! an error of the client, not a truncated payload.

#[cfg(feature = "mqttrust")]
pub mod mqttrust;

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

use ota_pal_traits::{
    verify_stored_image, BootControl, DownloadJournal, ImageStorage, ImageVerifier,
    PlatformImageState, Reset,
};

use crate::agent::{Agent, Command, Completion, HttpFailure, Instant, Received};
use crate::wire::status::StatusUpdate;
use crate::wire::topic::Qos;

/// One incoming MQTT publish, borrowed from the caller's receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttMessage<'b> {
    /// The topic.
    pub topic: &'b str,
    /// The payload.
    pub payload: &'b [u8],
}

/// The MQTT client the driver talks through (an adapter over rust-mqtt, mqttrust, a module's
/// AT commands...). Subscriptions and publishes complete when the broker acknowledged them
/// (SUBACK / PUBACK for QoS 1) or the client gave up.
#[allow(async_fn_in_trait)]
pub trait MqttClient {
    /// Transport or protocol error; ends [`Driver::run`] with [`Exit::Mqtt`].
    type Error;

    /// Subscribe to `topic`.
    async fn subscribe(&mut self, topic: &str, qos: Qos) -> Result<(), Self::Error>;

    /// Unsubscribe from `topic`.
    async fn unsubscribe(&mut self, topic: &str) -> Result<(), Self::Error>;

    /// Publish `payload` on `topic`.
    async fn publish(&mut self, topic: &str, payload: &[u8], qos: Qos) -> Result<(), Self::Error>;

    /// Wait for the next incoming publish and place it in `buf`. Cancel-safe.
    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, Self::Error>;
}

/// Time for the driver (`Instant` = milliseconds since an arbitrary epoch).
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current time.
    fn now(&mut self) -> Instant;

    /// Sleep until `at` (return at once if it has passed).
    async fn sleep_until(&mut self, at: Instant);
}

/// The application's part of an update.
#[allow(async_fn_in_trait)]
pub trait Application {
    /// After a reboot into a new image: check that the image works (connectivity, sensors...).
    /// `true` confirms it, `false` rolls it back.
    ///
    /// # Boards with several images per job
    ///
    /// On boards where one job installs several images (TF-M: a secure and a non-secure
    /// image, each a file of the job with its own trial boot), a power cut during the
    /// bootloader's install can leave only **some** components at the new version on trial:
    /// pal-tfm's power-loss tests measure this. The agent cannot see it (the platform reports
    /// `PendingCommit` either way), so the self test must check that **every** component runs
    /// the version the job installed (e.g. the secure image's version through the PSA
    /// firmware-update or attestation API, the non-secure one from its own header) and return
    /// `false` if any does not. The agent then rejects the trial images and reports
    /// `FAILED rejected: 0x00000000`, the bootloader rolls every component back, and the job
    /// can be started again. Confirming a mixed set would make it permanent.
    async fn self_test(&mut self) -> bool;

    /// A job that is not an OTA job: return `Some(status)` to claim it. The default declines
    /// (the agent reports it `FAILED 0x0000000c: 0x00000004`, as the reference).
    fn custom_job(&mut self, job_id: &str, document: &str) -> Option<StatusUpdate> {
        let _ = (job_id, document);
        None
    }
}

/// HTTP range GETs for the HTTP data path (spec §10).
#[allow(async_fn_in_trait)]
pub trait HttpRangeClient {
    /// GET `url` with `Range: bytes=start-end` (inclusive) into `buf`; returns the body length.
    async fn get(
        &mut self,
        url: &str,
        start: u32,
        end: u32,
        buf: &mut [u8],
    ) -> Result<usize, HttpFailure>;
}

/// For devices without HTTP: every request fails (keep [`Config::http_enabled`] false).
///
/// [`Config::http_enabled`]: crate::agent::Config::http_enabled
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHttp;

impl HttpRangeClient for NoHttp {
    async fn get(&mut self, _: &str, _: u32, _: u32, _: &mut [u8]) -> Result<usize, HttpFailure> {
        Err(HttpFailure::Other)
    }
}

/// Why [`Driver::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit<E> {
    /// The agent reset the device and [`Reset::reset`] returned (a simulation): boot again.
    Reset,
    /// The MQTT client failed; the agent was told it is offline. Reconnect and call
    /// [`Driver::run`] again with the same agent and driver.
    Mqtt(E),
}

/// Which of two futures finished first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first.
    First(A),
    /// The second.
    Second(B),
}

/// Wait for whichever of `a` and `b` completes first (`a` wins a tie); the other is dropped.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(y));
        }
        Poll::Pending
    })
    .await
}

/// Everything the driver works with. Fields are public so the application keeps access
/// (e.g. to its MQTT client between runs).
#[derive(Debug)]
pub struct Driver<M, C, A, H, S, V, B, R, J> {
    /// MQTT client.
    pub mqtt: M,
    /// Clock.
    pub clock: C,
    /// Application hooks.
    pub app: A,
    /// HTTP range client ([`NoHttp`] when unused).
    pub http: H,
    /// Image storage.
    pub storage: S,
    /// Signature verifier.
    pub verifier: V,
    /// Boot control.
    pub boot: B,
    /// Reset.
    pub reset: R,
    /// Download journal.
    pub journal: J,
    /// Bytes of the current file hashed on the fly (in order from 0).
    hashed_upto: u32,
}

impl<M, C, A, H, S, V, B, R, J> Driver<M, C, A, H, S, V, B, R, J>
where
    M: MqttClient,
    C: Clock,
    A: Application,
    H: HttpRangeClient,
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
    R: Reset,
    J: DownloadJournal,
{
    /// A driver over these parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mqtt: M,
        clock: C,
        app: A,
        http: H,
        storage: S,
        verifier: V,
        boot: B,
        reset: R,
        journal: J,
    ) -> Self {
        Self {
            mqtt,
            clock,
            app,
            http,
            storage,
            verifier,
            boot,
            reset,
            journal,
            hashed_upto: 0,
        }
    }

    /// Run the agent with an MQTT session that is up. On the first call this loads the
    /// journal, reads the platform image state and starts the agent. `rx_buf` receives
    /// messages (it must hold the largest job document or data block message: block size +
    /// ~64 bytes, or ~2 KiB for job documents) and doubles as the read-back buffer of the
    /// signature check.
    pub async fn run<const BB: usize, const UL: usize>(
        &mut self,
        agent: &mut Agent<BB, UL>,
        rx_buf: &mut [u8],
    ) -> Exit<M::Error> {
        if agent.state() == crate::agent::State::Stopped {
            let header = self
                .journal
                .load(&mut |i| agent.restore_block(i))
                .await
                .ok()
                .flatten();
            let state = self
                .boot
                .platform_state()
                .await
                .unwrap_or(PlatformImageState::Unknown);
            let now = self.clock.now();
            agent.start(now, state, header);
        }
        let now = self.clock.now();
        agent.connected(now);
        loop {
            if let Some(exit) = self.execute(agent, rx_buf).await {
                return exit;
            }
            let deadline = agent.poll_timeout();
            let event = {
                let receive = self.mqtt.receive(rx_buf);
                let clock = &mut self.clock;
                let sleep = async move {
                    match deadline {
                        Some(at) => clock.sleep_until(at).await,
                        None => poll_fn(|_| Poll::<()>::Pending).await,
                    }
                };
                select(receive, sleep).await
            };
            let now = self.clock.now();
            match event {
                Either::First(Ok(msg)) => match agent.handle_publish(now, msg.topic, msg.payload) {
                    Received::Block {
                        index,
                        offset,
                        data,
                    } => {
                        let r = self.store_block(index, offset, data).await;
                        let now = self.clock.now();
                        agent.block_written(now, index, r);
                    }
                    Received::CustomJob { job_id, document } => {
                        let answer = self.app.custom_job(job_id, document);
                        agent.custom_job_result(now, answer);
                    }
                    Received::Nothing => {}
                },
                Either::First(Err(e)) => {
                    agent.disconnected(now);
                    return Exit::Mqtt(e);
                }
                Either::Second(()) => agent.handle_timeout(now),
            }
        }
    }

    /// Write a block and journal it; hash it if it continues the in-order prefix.
    async fn store_block(
        &mut self,
        index: u32,
        offset: u32,
        data: &[u8],
    ) -> Result<(), ota_pal_traits::PalError> {
        self.storage.write(offset, data).await?;
        self.journal.record_block(index).await?;
        if offset == self.hashed_upto && self.verifier.needs_image_bytes() {
            self.verifier.update(data);
            self.hashed_upto = self
                .hashed_upto
                .saturating_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
        }
        Ok(())
    }

    /// Execute every queued command. `Some` ends the run.
    async fn execute<const BB: usize, const UL: usize>(
        &mut self,
        agent: &mut Agent<BB, UL>,
        rx_buf: &mut [u8],
    ) -> Option<Exit<M::Error>> {
        loop {
            let mut completion = None;
            let mut http_block = None;
            let mut mqtt_error = None;
            {
                let cmd = agent.poll_command()?;
                match cmd {
                    Command::Subscribe { topic, qos } => {
                        mqtt_error = self.mqtt.subscribe(topic, qos).await.err();
                    }
                    Command::Unsubscribe { topic } => {
                        mqtt_error = self.mqtt.unsubscribe(topic).await.err();
                    }
                    Command::Publish {
                        topic,
                        payload,
                        qos,
                    } => {
                        mqtt_error = self.mqtt.publish(topic, payload, qos).await.err();
                    }
                    Command::PrepareFile {
                        file,
                        resume,
                        journal,
                    } => {
                        let r = if resume {
                            self.storage.resume(&file).await
                        } else {
                            match self.storage.prepare(&file).await {
                                Ok(()) => self.journal.begin(journal).await,
                                Err(e) => Err(e),
                            }
                        };
                        self.verifier.begin(&file);
                        self.hashed_upto = 0;
                        completion = Some(Completion::Prepared(r));
                    }
                    Command::VerifyFile { file, signature } => {
                        let hashed = self.hashed_upto.min(file.size);
                        let r = verify_stored_image(
                            &mut self.storage,
                            &mut self.verifier,
                            &file,
                            hashed,
                            signature,
                            rx_buf,
                        )
                        .await;
                        completion = Some(Completion::Verified(r));
                    }
                    Command::RequestTrialBoot { file } => {
                        let r = self.boot.request_trial_boot(&file).await;
                        completion = Some(Completion::TrialBootRequested(r));
                    }
                    Command::ConfirmImage => {
                        completion = Some(Completion::Confirmed(self.boot.confirm().await));
                    }
                    Command::RejectImage => {
                        let _ = self.boot.reject().await;
                    }
                    Command::AbortFile => {
                        let _ = self.storage.abort().await;
                        let _ = self.journal.clear().await;
                    }
                    Command::ClearJournal => {
                        let _ = self.journal.clear().await;
                    }
                    Command::RunSelfTest => {
                        completion = Some(Completion::SelfTest(self.app.self_test().await));
                    }
                    Command::Reset => {
                        self.reset.reset();
                        return Some(Exit::Reset);
                    }
                    Command::HttpGet {
                        url,
                        index,
                        start,
                        end,
                    } => {
                        http_block = Some((index, self.http.get(url, start, end, rx_buf).await));
                    }
                }
            }
            let now = self.clock.now();
            if let Some(e) = mqtt_error {
                agent.disconnected(now);
                return Some(Exit::Mqtt(e));
            }
            if let Some(c) = completion {
                agent.complete(now, c);
            }
            if let Some((index, result)) = http_block {
                match result {
                    Ok(n) => {
                        let data = rx_buf.get(..n).unwrap_or(&[]);
                        if let Received::Block {
                            index,
                            offset,
                            data,
                        } = agent.handle_http_block(now, index, data)
                        {
                            let r = self.store_block(index, offset, data).await;
                            let now = self.clock.now();
                            agent.block_written(now, index, r);
                        }
                    }
                    Err(f) => agent.http_failed(now, f),
                }
            }
        }
    }
}
