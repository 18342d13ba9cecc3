//! `narrate emulate`: the built-in ElevenLabs-compatible API server on an address, until Ctrl-C.

use crate::cli::args::EmulateArgs;
use crate::emulator;
use crate::error::{EXIT_OK, UsageError};

/// The longest latency an answer may be given: past it, a client's own timeout decides.
const MAX_LATENCY_MS: u64 = 600_000;

/// A flag's seconds: more than 0, at most an hour.
fn seconds(flag: &str, value: f64) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero() && *d <= std::time::Duration::from_secs(3600))
        .ok_or_else(|| {
            UsageError(format!(
                "{flag} {value}: expected seconds between 0 and 3600"
            ))
            .into()
        })
}

/// Every number the flags give within its range, before anything is served.
fn check_ranges(args: &EmulateArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(UsageError(format!(
            "--fault-rate {}: a probability, between 0 and 1",
            args.fault_rate
        ))
        .into());
    }
    if !(args.latency_per_char_ms.is_finite()
        && (0.0..=10_000.0).contains(&args.latency_per_char_ms))
    {
        return Err(UsageError(format!(
            "--latency-per-char-ms {}: expected milliseconds between 0 and 10000",
            args.latency_per_char_ms
        ))
        .into());
    }
    if args.max_connections == 0 || args.max_connections > 65_536 {
        return Err(UsageError("--max-connections: between 1 and 65536".into()).into());
    }
    if !(1..=65_536).contains(&args.undelivered_mib) {
        return Err(UsageError("--undelivered-mib: between 1 and 65536".into()).into());
    }
    if args.latency_ms > MAX_LATENCY_MS {
        return Err(UsageError(format!(
            "--latency-ms {}: expected milliseconds between 0 and {MAX_LATENCY_MS} (ten minutes)",
            args.latency_ms
        ))
        .into());
    }
    Ok(())
}

pub(crate) async fn run(args: &EmulateArgs) -> anyhow::Result<u8> {
    let tier = args.tier.parse().map_err(|e: String| UsageError(e))?;
    check_ranges(args)?;
    let header_timeout = seconds("--header-timeout", args.header_timeout)?;
    let body_timeout = seconds("--body-timeout", args.body_timeout)?;
    let config = emulator::Config {
        api_key: args.api_key.clone(),
        tier,
        character_limit: args.quota,
        latency_ms: args.latency_ms,
        latency_per_char_ms: args.latency_per_char_ms,
        request_log: args.request_log.clone(),
        faults: emulator::Faults {
            rate: args.fault_rate,
            seed: args.fault_seed,
            kinds: args
                .faults
                .iter()
                .map(|f| f.parse())
                .collect::<Result<_, String>>()
                .map_err(UsageError)?,
        },
        max_connections: args.max_connections,
        header_timeout,
        body_timeout,
        undelivered_mib: args.undelivered_mib,
        model_limits: Vec::new(),
        models_down: false,
        subscription_down: false,
        hold_answers_until: 0,
        history: match (&args.history_format, args.no_history) {
            (_, true) => emulator::HistoryMode::Absent,
            (Some(f), false) => emulator::HistoryMode::Format(
                f.parse()
                    .map_err(|e| UsageError(format!("--history-format: {e}")))?,
            ),
            (None, false) => emulator::HistoryMode::Kept,
        },
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| UsageError(format!("--listen {}: {e}", args.listen)))?;
    let addr = listener.local_addr()?;
    let state = emulator::Emulator::new(config).map_err(|e| UsageError(e.to_string()))?;
    println!("narrate emulator listening on http://{addr}");
    eprintln!(
        "point narrate at it with --base-url http://{addr} (any non-empty key); Ctrl-C stops it"
    );
    emulator::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(EXIT_OK)
}
