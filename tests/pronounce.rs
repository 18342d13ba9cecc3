//! Pronunciation rules in the manifest: one dictionary kept on the account across runs, only
//! the requests with a changed rule's word rendered again, locators only where a word is,
//! PLS lexicons, and the bad rules refused offline. Judged by the emulator's request log and
//! its dictionaries (read over HTTP), and by the report's durations.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::util::*;

const SEGMENTS: &str = "segments:
  - {id: a, text: \"The Cheshire Cat grinned at Alice.\"}
  - {id: b, text: \"Alice thought of Dinah, her own cat.\"}
  - {id: c, text: \"Nothing here has a name in it at all.\"}
  - {id: d, text: \"Cheshire again, and Dinah too.\"}
";

fn manifest(rules: &str) -> String {
    format!(
        "title: Names\noutput: out/names.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_44100_128}}\npronunciations:\n{rules}{SEGMENTS}"
    )
}

/// The log's requests to the dictionary endpoints: (method, path).
fn dictionary_calls(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v1/pronunciation-dictionaries"))
        })
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Each segment's duration in a report.
fn durations(report: &Value) -> BTreeMap<String, f64> {
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["end_seconds"].as_f64().unwrap() - s["start_seconds"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn locators(entry: &Value) -> Vec<Value> {
    entry["body"]["pronunciation_dictionary_locators"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn get(base: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("xi-api-key", SECRET_KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dictionary_across_runs_and_a_changed_rule_renders_only_its_requests() {
    let fx = Fixture::default().await;
    let rules =
        "  - {word: Cheshire, alias: \"CHESH-er\"}\n  - {word: Dinah, alias: \"DYE-nah\"}\n";
    fx.write("names.yaml", &manifest(rules));

    // Run 1: the dictionary is created, and goes only with the texts that have a word.
    let out = fx.run(&["names.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let calls = dictionary_calls(&fx.log());
    assert_eq!(
        calls,
        [(
            "POST".to_string(),
            "/v1/pronunciation-dictionaries/add-from-rules".to_string()
        )]
    );
    let sent = fx.tts_log();
    assert_eq!(sent.len(), 4);
    let mut first_version = String::new();
    for e in &sent {
        let text = e["body"]["text"].as_str().unwrap();
        let l = locators(e);
        if text.starts_with("Nothing") {
            assert!(l.is_empty(), "no word, no locator: {e}");
        } else {
            assert_eq!(l.len(), 1, "{e}");
            first_version = l[0]["version_id"].as_str().unwrap().to_string();
        }
    }
    let id = locators(&sent[0])[0]["pronunciation_dictionary_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = durations(&fx.json("out/names.report.json"));

    // The emulator's dictionary has the rules, as narrate sent them.
    let d: Value = get(&fx.base(), &format!("/v1/pronunciation-dictionaries/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["latest_version_id"], first_version.as_str());
    let words: Vec<&str> = d["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["string_to_replace"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["Cheshire", "Dinah"]);

    // Run 2: nothing changed, nothing created, nothing sent.
    let out = fx.run(&["names.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), 4);
    // (The second call is this test's own look above.)
    let calls = dictionary_calls(&fx.log());
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[2],
        (
            "GET".to_string(),
            format!("/v1/pronunciation-dictionaries/{id}")
        )
    );

    // plan names what a change of each rule would render again.
    let out = narrate(
        fx.path(),
        &["plan", "names.yaml", "--base-url", &fx.base()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    let plan = stdout(&out);
    assert!(
        plan.contains("pronunciation \"Cheshire\": 2 requests (a#1, d#1)")
            && plan.contains("pronunciation \"Dinah\": 2 requests (b#1, d#1)"),
        "{plan}"
    );
    // Every request rendered and stored: nothing left to pay for.
    assert!(
        plan.contains("4 requests, ") && plan.contains(", 4 cached, about 0 credits to render"),
        "{plan}"
    );

    // Run 3: Cheshire said another way. The same dictionary gets the new rules (a new
    // version); exactly the requests with "Cheshire" are sent again, with that version.
    let rules = "  - {word: Cheshire, alias: \"CHESH-er, the grinning one,\"}\n  - {word: Dinah, alias: \"DYE-nah\"}\n";
    fx.write("names.yaml", &manifest(rules));
    let out = fx.run(&["names.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let calls = dictionary_calls(&fx.log());
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert_eq!(
        calls[4],
        (
            "POST".to_string(),
            format!("/v1/pronunciation-dictionaries/{id}/set-rules")
        )
    );
    let again: Vec<Value> = fx.tts_log()[4..].to_vec();
    let texts: Vec<&str> = again
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "The Cheshire Cat grinned at Alice.",
            "Cheshire again, and Dinah too."
        ]
    );
    for e in &again {
        let l = locators(e);
        assert_eq!(l[0]["pronunciation_dictionary_id"], id.as_str());
        assert_ne!(
            l[0]["version_id"],
            first_version.as_str(),
            "the new version is pinned"
        );
    }
    // The output changed only there: the longer alias is spoken in a and d.
    let after = durations(&fx.json("out/names.report.json"));
    for (segment, seconds) in &after {
        if segment == "a" || segment == "d" {
            assert!(
                *seconds > before[segment] + 0.3,
                "{segment}: {seconds} s after, {} s before",
                before[segment]
            );
        } else {
            assert!(
                (seconds - before[segment]).abs() < 1e-6,
                "{segment}: {seconds} s after, {} s before",
                before[segment]
            );
        }
    }
}

/// The (grapheme, alias) pairs of a PLS, read with plain string search.
fn pls_pairs(pls: &str) -> Vec<(String, String)> {
    let between = |s: &str, open: &str, close: &str| -> Option<String> {
        let a = s.find(open)? + open.len();
        let b = s[a..].find(close)? + a;
        Some(s[a..b].trim().to_string())
    };
    pls.split("<lexeme")
        .skip(1)
        .filter_map(|lexeme| {
            Some((
                between(lexeme, "<grapheme>", "</grapheme>")?,
                between(lexeme, "<alias>", "</alias>")?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pls_lexicon_round_trips_and_bad_rules_are_refused_before_sending() {
    let fx = Fixture::default().await;
    let d = fx.path();
    let pls = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<lexicon version=\"1.0\" xmlns=\"http://www.w3.org/2005/01/pronunciation-lexicon\" alphabet=\"ipa\" xml:lang=\"en-GB\">\n  <lexeme>\n    <grapheme>Cheshire</grapheme>\n    <alias>CHESH-er</alias>\n  </lexeme>\n  <lexeme><grapheme>Dinah</grapheme><alias>DYE-nah &amp; co</alias></lexeme>\n</lexicon>\n";
    write(d, "names.pls", pls);
    write(
        d,
        "pls.yaml",
        &manifest("").replace("pronunciations:\n", "pronunciation_file: names.pls\n"),
    );
    let out = fx.run(&["pls.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let remembered = read_json(&d.join(".narrate/dictionaries/pls-yaml.json"));
    let (id, version) = (
        remembered["id"].as_str().unwrap(),
        remembered["version_id"].as_str().unwrap(),
    );
    let downloaded = get(
        &fx.base(),
        &format!("/v1/pronunciation-dictionaries/{id}/{version}/download"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(pls_pairs(&downloaded), pls_pairs(pls), "{downloaded}");
    assert_eq!(pls_pairs(pls).len(), 2);

    // Bad rules: exit 2 naming the file, the line or the field; the emulator hears nothing.
    write(
        d,
        "broken.pls",
        "<lexicon alphabet=\"ipa\">\n<lexeme>\n<grapheme>X</grapheme>\n<alias>y</lexeme>\n",
    );
    let three = "pronunciation_dictionary_locators: [{pronunciation_dictionary_id: a1}, {pronunciation_dictionary_id: a2}, {pronunciation_dictionary_id: a3}]";
    let before = fx.log().len();
    for (name, yaml, says) in [
        (
            "empty.yaml",
            manifest("  - {word: \" \", alias: x}\n"),
            "pronunciations[0].word: a rule needs a word",
        ),
        (
            "twice.yaml",
            manifest("  - {word: Dinah, alias: x}\n  - {word: Dinah, alias: y}\n"),
            "pronunciations[1].word: \"Dinah\" has a rule already",
        ),
        (
            "alphabet.yaml",
            manifest("  - {word: Dinah, phoneme: \"ˈdaɪnə\", alphabet: sampa}\n"),
            "pronunciations[0].alphabet: \"sampa\" is not an alphabet",
        ),
        (
            "both.yaml",
            manifest("  - {word: Dinah, alias: x, phoneme: y, alphabet: ipa}\n"),
            "give either alias, or phoneme",
        ),
        (
            "broken.yaml",
            manifest("").replace("pronunciations:\n", "pronunciation_file: broken.pls\n"),
            "broken.pls:",
        ),
        (
            "four.yaml",
            manifest("  - {word: Dinah, alias: x}\n").replace(
                "{id: b, text: \"Alice thought of Dinah, her own cat.\"}",
                &format!("{{id: b, text: \"Alice thought of Dinah, her own cat.\", {three}}}"),
            ),
            "segment b has 3 dictionary locators",
        ),
    ] {
        write(d, name, &yaml);
        let out = fx.run(&[name]).await;
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(name) || err.contains("broken.pls"),
            "{name}: {err}"
        );
        assert!(err.contains(says), "{name}: {err}");
    }
    let broken = narrate(d, &["check", "broken.yaml"], &[]).await;
    assert!(
        stderr(&broken).contains("broken.pls:4:"),
        "{}",
        stderr(&broken)
    );
    assert_eq!(fx.log().len(), before, "nothing was sent");

    // A phoneme rule meeting a model that skips phonemes is a warning, suggesting an alias.
    write(
        d,
        "phoneme.yaml",
        &manifest("  - {word: Dinah, phoneme: \"ˈdaɪnə\", alphabet: ipa}\n"),
    );
    let out = narrate(d, &["check", "phoneme.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is skipped by eleven_multilingual_v2")
            && stderr(&out).contains("alias"),
        "{}",
        stderr(&out)
    );
    let flash = manifest("  - {word: Dinah, phoneme: \"ˈdaɪnə\", alphabet: ipa}\n").replace(
        "output_format: mp3_44100_128",
        "output_format: mp3_44100_128, model_id: eleven_flash_v2",
    );
    write(d, "flash.yaml", &flash);
    let out = narrate(d, &["check", "flash.yaml"], &[]).await;
    assert!(!stderr(&out).contains("skipped by"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_checks_locators_and_pages_its_dictionaries() {
    let fx = Fixture::default().await;
    let base = fx.base();
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .header("xi-api-key", SECRET_KEY)
            .json(&body)
            .send()
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = post(
            "/v1/pronunciation-dictionaries/add-from-rules".into(),
            serde_json::json!({"name": format!("d{n}"), "rules": [{"string_to_replace": "Dinah", "type": "alias", "alias": "Dye"}]}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["version_rules_num"], 1);
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // Cursor paging, newest first.
    let page: Value = get(&base, "/v1/pronunciation-dictionaries?page_size=2")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = page["pronunciation_dictionaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["d2", "d1"]);
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page: Value = get(
        &base,
        &format!("/v1/pronunciation-dictionaries?page_size=2&cursor={cursor}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["pronunciation_dictionaries"][0]["name"], "d0");
    assert_eq!(page["has_more"], false);
    assert_eq!(
        get(&base, "/v1/pronunciation-dictionaries?page_size=101")
            .await
            .status(),
        422
    );

    // add-rules replaces a word's rule and adds the others; remove-rules takes words out; each
    // is a new version.
    let r: Value = post(
        format!("/v1/pronunciation-dictionaries/{}/add-rules", ids[0]),
        serde_json::json!({"rules": [
            {"string_to_replace": "Dinah", "type": "alias", "alias": "Dye-nah"},
            {"string_to_replace": "Alice", "type": "phoneme", "phoneme": "ˈælɪs", "alphabet": "ipa"}
        ]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["version_rules_num"], 2);
    let added = r["version_id"].as_str().unwrap().to_string();
    let r: Value = post(
        format!("/v1/pronunciation-dictionaries/{}/remove-rules", ids[0]),
        serde_json::json!({"rule_strings": ["Alice"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["version_rules_num"], 1);
    assert_ne!(r["version_id"], added.as_str());
    let d: Value = get(&base, &format!("/v1/pronunciation-dictionaries/{}", ids[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["rules"][0]["alias"], "Dye-nah");
    assert_eq!(d["latest_version_rules_num"], 1);
    // The older version is still there to download.
    let pls = get(
        &base,
        &format!("/v1/pronunciation-dictionaries/{}/{added}/download", ids[0]),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        pls.contains("<grapheme>Alice</grapheme>") && pls.contains("ˈælɪs"),
        "{pls}"
    );

    // A rule without its alias, an unknown dictionary or version, four locators.
    let r = post(
        "/v1/pronunciation-dictionaries/add-from-rules".into(),
        serde_json::json!({"name": "x", "rules": [{"string_to_replace": "a", "type": "alias"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"][0]["loc"],
        serde_json::json!(["body", "rules", "0", "alias"])
    );
    let tts = |locators: Value| {
        post(
            format!("/v1/text-to-speech/{NARRATOR}"),
            serde_json::json!({"text": "Dinah.", "pronunciation_dictionary_locators": locators}),
        )
    };
    let r = tts(serde_json::json!([{"pronunciation_dictionary_id": "nope"}]))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("pronunciation_dictionary_not_found")
    );
    let r = tts(serde_json::json!([{"pronunciation_dictionary_id": ids[0], "version_id": "nope"}]))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let four: Vec<Value> = (0..4)
        .map(|_| serde_json::json!({"pronunciation_dictionary_id": ids[0]}))
        .collect();
    let r = tts(Value::Array(four)).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"][0]["type"], "too_long");
    let r = tts(serde_json::json!([{"pronunciation_dictionary_id": ids[0]}]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
