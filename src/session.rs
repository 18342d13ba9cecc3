//! A session with the API: the HTTP client, and the in-process emulator when `--emulate` asks for
//! one. The emulator serves as long as the session lives: [`Session::close`] stops it and waits,
//! and dropping the session stops it too.
//!
//! Not responsible for what is sent (see `commands`).

use std::time::Duration;

use anyhow::Context as _;

use crate::api::Client;
use crate::cli::Endpoint;
use crate::cli::args::ApiArgs;
use crate::cli::config::endpoint;
use crate::emulator;

/// The client of a command, with the emulator it talks to when there is one.
pub(crate) struct Session {
    pub client: Client,
    /// Dropping it (with the session) stops the emulator.
    emulator: Option<emulator::Running>,
}

/// The per-attempt timeout of commands other than `render` (which has `--request-timeout`).
const TIMEOUT: Duration = Duration::from_secs(60);

impl Session {
    /// A client for `endpoint`, with the in-process emulator started first for `--emulate`.
    pub(crate) async fn connect(endpoint: &Endpoint, timeout: Duration) -> anyhow::Result<Self> {
        let emulator = if endpoint.emulate {
            Some(
                emulator::start(emulator::Config::default())
                    .await
                    .context("starting the emulator")?,
            )
        } else {
            None
        };
        let base = emulator
            .as_ref()
            .map_or_else(|| endpoint.base_url.clone(), |e| e.base_url());
        let client = Client::new(&base, endpoint.key.clone(), timeout)?;
        Ok(Session { client, emulator })
    }

    /// A session for a command that needs a key (`voices`, `models`).
    pub(crate) async fn required(api: &ApiArgs, env_key: Option<String>) -> anyhow::Result<Self> {
        Session::connect(&endpoint(api, env_key, true)?, TIMEOUT).await
    }

    /// A session for a command that can do without one (`plan`, `check`): `None` without
    /// `--emulate` or a key.
    pub(crate) async fn optional(
        api: &ApiArgs,
        env_key: Option<String>,
    ) -> anyhow::Result<Option<Self>> {
        let endpoint = endpoint(api, env_key, false)?;
        if !endpoint.emulate && endpoint.key.is_none() {
            return Ok(None);
        }
        Ok(Some(Session::connect(&endpoint, TIMEOUT).await?))
    }

    /// Stops the emulator, if any, and waits for it.
    pub(crate) async fn close(self) {
        if let Some(e) = self.emulator {
            e.stop().await;
        }
    }
}
