//! `narrate models`: the models and their per-request character limits (`GET /v1/models`), as a
//! table or as the API's JSON.

use anyhow::Context as _;

use crate::api::Model;
use crate::cli::args::ModelsArgs;
use crate::error::EXIT_OK;
use crate::session::Session;

pub(crate) async fn run(args: &ModelsArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let session = Session::required(&args.api, env_key).await?;
    let models = session.client.get_json("/v1/models", &[]).await;
    session.close().await;
    let models = models.context("GET /v1/models")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(EXIT_OK);
    }
    println!(
        "{:<24} {:>9} {:>8} {:>9}  name",
        "model_id", "max_chars", "credits", "languages"
    );
    for m in models.as_array().into_iter().flatten() {
        let m: Model = serde_json::from_value(m.clone()).unwrap_or_default();
        println!(
            "{:<24} {:>9} {:>8} {:>9}  {}",
            m.model_id,
            m.maximum_text_length_per_request
                .map(|n| n.to_string())
                .unwrap_or_default(),
            m.model_rates
                .and_then(|r| r.character_cost_multiplier)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            m.languages.len(),
            m.name
        );
    }
    Ok(EXIT_OK)
}
