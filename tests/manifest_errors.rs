//! Bad manifests: each exits 2, names the file, the line and the field, sends nothing and
//! leaves an existing output untouched.

use crate::util::*;

const HEAD: &str = "output: out/book.wav\ndefaults:\n  voice_id: JBFqnCBsd6RMkjVDRZzb\n  output_format: pcm_16000\nsegments:\n";

/// (case, file name, manifest text, substrings the error must contain)
fn cases() -> Vec<(&'static str, &'static str, String, Vec<&'static str>)> {
    let seg = |extra: &str| format!("{HEAD}  - id: a\n    text: Hello.\n  - id: b\n{extra}");
    vec![
        (
            "unknown field",
            "bad.yaml",
            seg("    text: Hi.\n    colour: blue\n"),
            vec!["bad.yaml:", "colour"],
        ),
        (
            "unknown top-level field",
            "bad.yaml",
            format!("titel: x\n{}", seg("    text: Hi.\n")),
            vec!["bad.yaml:1", "titel"],
        ),
        (
            "duplicate id",
            "bad.yaml",
            format!("{HEAD}  - id: a\n    text: Hello.\n  - id: a\n    text: Again.\n"),
            vec!["bad.yaml:8", "segments[1].id", "duplicate id \"a\""],
        ),
        (
            "unsafe id",
            "bad.yaml",
            seg("    text: Hi.\n  - id: ../etc\n    text: x\n"),
            vec!["bad.yaml:10", "segments[2].id", "not a valid id"],
        ),
        (
            "empty text",
            "bad.yaml",
            seg("    text: \"   \"\n"),
            vec!["bad.yaml:8", "\"b\"", "text", "empty"],
        ),
        (
            "text and text_file",
            "bad.yaml",
            seg("    text: Hi.\n    text_file: a.txt\n"),
            vec!["bad.yaml:8", "text_file", "not both"],
        ),
        (
            "missing text file",
            "bad.yaml",
            seg("    text_file: nowhere.txt\n"),
            vec!["bad.yaml:8", "text_file", "nowhere.txt"],
        ),
        (
            "bad output_format",
            "bad.yaml",
            seg("    text: Hi.\n    output_format: mp3_44100_999\n"),
            vec!["bad.yaml:8", "output_format", "mp3_44100_999"],
        ),
        (
            "mixed output formats",
            "bad.yaml",
            seg("    text: Hi.\n    output_format: pcm_24000\n"),
            vec!["bad.yaml:8", "output_format", "share one output_format"],
        ),
        (
            "stability out of range",
            "bad.yaml",
            seg("    text: Hi.\n    voice_settings: {stability: 1.5}\n"),
            vec!["bad.yaml:8", "voice_settings.stability", "1.5"],
        ),
        (
            "speed out of range",
            "bad.yaml",
            seg("    text: Hi.\n    voice_settings: {speed: 3}\n"),
            vec!["bad.yaml:8", "voice_settings.speed"],
        ),
        (
            "bad normalization enum",
            "bad.yaml",
            seg("    text: Hi.\n    apply_text_normalization: maybe\n"),
            vec!["bad.yaml:8", "apply_text_normalization", "maybe"],
        ),
        (
            "too many dictionaries",
            "bad.yaml",
            seg(
                "    text: Hi.\n    pronunciation_dictionary_locators: [{pronunciation_dictionary_id: a}, {pronunciation_dictionary_id: b}, {pronunciation_dictionary_id: c}, {pronunciation_dictionary_id: d}]\n",
            ),
            vec![
                "bad.yaml:8",
                "pronunciation_dictionary_locators",
                "at most 3",
            ],
        ),
        (
            "unknown model",
            "bad.yaml",
            seg("    text: Hi.\n    model_id: eleven_imaginary\n"),
            vec!["bad.yaml:8", "model_id", "eleven_imaginary"],
        ),
        (
            "no segments",
            "bad.yaml",
            "output: out/book.wav\nsegments: []\n".to_string(),
            vec!["bad.yaml", "segments", "no segments"],
        ),
        (
            "malformed YAML",
            "bad.yaml",
            format!("{HEAD}  - id: a\n    text: [unclosed\n"),
            vec!["bad.yaml:", "malformed"],
        ),
        (
            "wrong type",
            "bad.yaml",
            seg("    text: Hi.\n    seed: lots\n"),
            vec!["bad.yaml:10", "seed"],
        ),
        (
            "mp3 output from pcm",
            "bad.yaml",
            HEAD.replace("out/book.wav", "out/book.mp3") + "  - id: a\n    text: Hi.\n",
            vec!["bad.yaml", "output", "mp3_*"],
        ),
        (
            "unknown CSV column",
            "bad.csv",
            "id,text,colour\na,Hi.,blue\n".to_string(),
            vec!["bad.csv:1", "colour", "unknown column"],
        ),
        (
            "bad CSV number",
            "bad.csv",
            "id,text,stability\na,Hi.,0.5\nb,Hello.,high\n".to_string(),
            vec!["bad.csv:3", "stability", "high"],
        ),
        (
            "CSV row without voice",
            "bad.csv",
            "id,text\na,Hi.\n".to_string(),
            vec!["bad.csv:2", "voice_id", "--voice-id"],
        ),
        (
            "malformed CSV",
            "bad.csv",
            "id,text\na,Hi.,extra\n".to_string(),
            vec!["bad.csv:2", "malformed CSV"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_manifest_exits_2_naming_file_line_and_field_and_sends_nothing() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    let mut failures = Vec::new();
    for (case, name, text, wants) in cases() {
        let case_dir = dir.path().join(case.replace(' ', "-"));
        write(&case_dir, name, &text);
        write(&case_dir, "out/book.wav", "keep me");
        write(&case_dir, "bad.wav", "keep me");
        let out = narrate(
            &case_dir,
            &[name, "--base-url", &fx.emu.base_url()],
            &[("ELEVENLABS_API_KEY", SECRET_KEY)],
        )
        .await;
        let err = stderr(&out);
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{case}: exit {:?}, stderr {err}",
                out.status.code()
            ));
            continue;
        }
        for want in &wants {
            if !err.contains(want) {
                failures.push(format!("{case}: {want:?} not in {err:?}"));
            }
        }
        assert_eq!(
            std::fs::read_to_string(case_dir.join("out/book.wav")).unwrap(),
            "keep me"
        );
        assert_eq!(
            std::fs::read_to_string(case_dir.join("bad.wav")).unwrap(),
            "keep me"
        );
        assert!(
            !case_dir.join("out/book.report.json").exists(),
            "{case}: no report for an invalid manifest"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        request_log(dir.path()).is_empty(),
        "nothing is sent for a bad manifest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_manifest_among_several_stops_all_before_sending() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    write(
        dir.path(),
        "good.yaml",
        &format!("{HEAD}  - id: a\n    text: Hello.\n"),
    );
    write(
        dir.path(),
        "bad.yaml",
        &format!("{HEAD}  - id: a\n    text: \"\"\n"),
    );
    let out = narrate(
        dir.path(),
        &["good.yaml", "bad.yaml", "--base-url", &fx.emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.yaml:6"), "{}", stderr(&out));
    assert!(request_log(dir.path()).is_empty());
}
