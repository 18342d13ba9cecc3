//! `narrate voices`: the account's voices, every page of `GET /v2/voices`, as a table or as the
//! API's JSON.

use anyhow::Context as _;

use crate::api::Voice;
use crate::cli::args::VoicesArgs;
use crate::error::EXIT_OK;
use crate::session::Session;

pub(crate) async fn run(args: &VoicesArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let session = Session::required(&args.api, env_key).await?;
    let voices = session.client.voices(args.search.as_deref()).await;
    session.close().await;
    let voices = voices.context("GET /v2/voices")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&voices)?);
        return Ok(EXIT_OK);
    }
    println!(
        "{:<22} {:<12} {:<10} {:<8} {:<11} description",
        "voice_id", "name", "category", "gender", "accent"
    );
    for v in &voices {
        let v: Voice = serde_json::from_value(v.clone()).unwrap_or_default();
        println!(
            "{:<22} {:<12} {:<10} {:<8} {:<11} {}",
            v.voice_id,
            v.name,
            v.category.as_deref().unwrap_or(""),
            v.labels.gender.as_deref().unwrap_or(""),
            v.labels.accent.as_deref().unwrap_or(""),
            v.description.as_deref().unwrap_or("")
        );
    }
    Ok(EXIT_OK)
}
