//! `narrate feed FEED.xml REPORT.json... --feed-base-url URL`: adds the episodes of successful
//! renders to a podcast feed, or updates them. One episode per output file (a render's output,
//! or each file of a split one). The feed's episodes are kept in `FEED.xml.narrate.json`
//! beside it, so a later run adds to them; an episode's GUID comes from its audio file's path
//! within the feed's folder, so rendering it again updates it instead of adding another.
//!
//! Not responsible for the feed's XML (see `output::feed`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cli::args::FeedArgs;
use crate::error::UsageError;
use crate::files;
use crate::output::feed::{self, Channel, Item};

/// What the feed holds between runs.
#[derive(Serialize, Deserialize)]
struct State {
    channel: Channel,
    items: Vec<Item>,
}

/// The fields of a report an episode is made from.
#[derive(Deserialize)]
struct Report {
    status: String,
    output: PathBuf,
    #[serde(default)]
    outputs: Vec<Output>,
    totals: Totals,
    #[serde(default)]
    segments: Vec<Segment>,
}

#[derive(Deserialize)]
struct Output {
    path: PathBuf,
    audio_seconds: f64,
}

#[derive(Deserialize)]
struct Totals {
    audio_seconds: f64,
}

#[derive(Deserialize)]
struct Segment {
    id: String,
    chapter: Option<String>,
    start_seconds: Option<f64>,
    file: Option<String>,
}

/// One audio file to publish as an episode.
struct Episode {
    audio: PathBuf,
    title: String,
    seconds: f64,
    chapters: Vec<(f64, String)>,
}

/// Writes or updates the feed.
pub(crate) fn run(args: &FeedArgs) -> anyhow::Result<u8> {
    let state_path = PathBuf::from(format!("{}.narrate.json", args.feed.display()));
    let mut state = load_state(args, &state_path)?;
    let base = crate::cli::config::checked_url("--feed-base-url", &args.feed_base_url)?;
    let folder = files::parent_dir(&args.feed).to_path_buf();
    let mut added = 0;
    for report in &args.reports {
        for episode in episodes(report)? {
            let item = item(&episode, &folder, &base, report)?;
            match state.items.iter_mut().find(|i| i.guid == item.guid) {
                // The same episode again: its new audio, its first publication date.
                Some(old) => {
                    *old = Item {
                        published: old.published.clone(),
                        published_unix: old.published_unix,
                        ..item
                    }
                }
                None => {
                    state.items.push(item);
                    added += 1;
                }
            }
        }
    }
    let xml = feed::rss(&state.channel, &state.items);
    files::write_atomic(&args.feed, xml.as_bytes())?;
    files::write_atomic(&state_path, &serde_json::to_vec_pretty(&state)?)?;
    println!(
        "feed {}: {} episodes ({added} new)",
        args.feed.display(),
        state.items.len()
    );
    Ok(crate::error::EXIT_OK)
}

/// The feed's state: the earlier one with the flags given now, or a new one (then `--title`
/// and `--image` are needed).
fn load_state(args: &FeedArgs, path: &Path) -> anyhow::Result<State> {
    let earlier: Option<State> = match files::read_text(path, files::MAX_INPUT_BYTES) {
        Ok(text) => Some(serde_json::from_str(&text).map_err(|e| {
            UsageError(format!(
                "{}: not a narrate feed's episodes ({e}); move it away to start the feed again",
                path.display()
            ))
        })?),
        Err(_) if args.feed.exists() => {
            return Err(UsageError(format!(
                "{}: exists, but its episodes ({}) do not; narrate does not write over a feed it did not make",
                args.feed.display(),
                path.display()
            ))
            .into());
        }
        Err(_) => None,
    };
    let missing =
        |flag: &str| UsageError(format!("{}: a new feed needs {flag}", args.feed.display()));
    let (channel, items) = match earlier {
        Some(s) => (s.channel, s.items),
        None => {
            let title = args.title.clone().ok_or_else(|| missing("--title"))?;
            let image = args.image.clone().ok_or_else(|| missing("--image URL"))?;
            let channel = Channel {
                description: title.clone(),
                title,
                link: args.feed_base_url.clone(),
                author: None,
                image,
                language: "en".into(),
                category: "Society & Culture".into(),
                explicit: false,
            };
            (channel, Vec::new())
        }
    };
    Ok(State {
        channel: with_flags(channel, args),
        items,
    })
}

/// The channel with what the flags say of it.
fn with_flags(mut c: Channel, args: &FeedArgs) -> Channel {
    let set = |field: &mut String, value: &Option<String>| {
        if let Some(v) = value {
            field.clone_from(v);
        }
    };
    set(&mut c.title, &args.title);
    set(&mut c.description, &args.description);
    set(&mut c.image, &args.image);
    set(&mut c.language, &args.language);
    set(&mut c.category, &args.category);
    set(&mut c.link, &args.link);
    if args.author.is_some() {
        c.author.clone_from(&args.author);
    }
    if let Some(explicit) = args.explicit {
        c.explicit = explicit;
    }
    c
}

/// The episodes of a report: its output, or each file of a split output.
fn episodes(path: &Path) -> anyhow::Result<Vec<Episode>> {
    let report: Report = super::read_report(path)?;
    if report.status != "ok" {
        return Err(UsageError(format!(
            "{}: the render failed; only a finished render is published (narrate retry {} first)",
            path.display(),
            path.display()
        ))
        .into());
    }
    let title = review_title(path).unwrap_or_else(|| stem(&report.output));
    if report.outputs.is_empty() {
        // Chapters start where their first segment does.
        let mut chapters: Vec<(f64, String)> = Vec::new();
        for s in &report.segments {
            if let (Some(c), Some(start)) = (&s.chapter, s.start_seconds)
                && chapters.last().is_none_or(|(_, last)| last != c)
            {
                chapters.push((start, c.clone()));
            }
        }
        return Ok(vec![Episode {
            audio: report.output.clone(),
            title,
            seconds: report.totals.audio_seconds,
            chapters,
        }]);
    }
    // A split output: each file an episode, titled after its first segment's chapter or id.
    let mut first: std::collections::HashMap<&str, &Segment> = std::collections::HashMap::new();
    for s in &report.segments {
        if let Some(f) = &s.file {
            first.entry(f.as_str()).or_insert(s);
        }
    }
    Ok(report
        .outputs
        .iter()
        .map(|o| {
            let segment = first.get(o.path.to_string_lossy().as_ref());
            let name = segment
                .and_then(|s| s.chapter.clone())
                .or_else(|| segment.map(|s| s.id.clone()))
                .unwrap_or_else(|| stem(&o.path));
            Episode {
                audio: o.path.clone(),
                title: format!("{title}: {name}"),
                seconds: o.audio_seconds,
                chapters: Vec::new(),
            }
        })
        .collect())
}

/// The title the render's review data gives, if any.
fn review_title(report: &Path) -> Option<String> {
    let data = crate::output::review::data_path(report);
    let text = files::read_text(&data, files::MAX_INPUT_BYTES).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["title"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// An episode as a feed item: its audio must be under the feed's folder (its URL is the base
/// URL and its path from there); its captions and chapters are linked when they exist.
fn item(e: &Episode, folder: &Path, base: &str, report: &Path) -> anyhow::Result<Item> {
    let meta = std::fs::metadata(&e.audio).map_err(|err| {
        UsageError(format!(
            "{}: its audio {} cannot be read ({err})",
            report.display(),
            e.audio.display()
        ))
    })?;
    let url_of = |path: &Path| -> anyhow::Result<String> {
        let relative = relative_to(path, folder).ok_or_else(|| {
            UsageError(format!(
                "{}: {} is not under the feed's folder {}; put the feed beside the outputs",
                report.display(),
                path.display(),
                folder.display()
            ))
        })?;
        let mut url = url::Url::parse(&format!("{base}/"))?;
        url.path_segments_mut()
            .map_err(|()| UsageError(format!("--feed-base-url {base}: cannot hold a path")))?
            .pop_if_empty()
            .extend(relative.iter().map(|c| c.to_string_lossy().into_owned()));
        Ok(url.to_string())
    };
    let vtt = e.audio.with_extension("vtt");
    let transcript = vtt
        .is_file()
        .then(|| url_of(&vtt).map(|u| (u, "text/vtt".to_string())))
        .transpose()?;
    let chapters = if e.chapters.len() > 1 {
        let path = e.audio.with_extension("chapters.json");
        files::write_atomic(&path, &feed::chapters_json(&e.chapters))?;
        Some(url_of(&path)?)
    } else {
        None
    };
    let relative = relative_to(&e.audio, folder).unwrap_or_default();
    let now = SystemTime::now();
    Ok(Item {
        guid: format!(
            "narrate-{}",
            &crate::state::cache::sha256_hex(relative.to_string_lossy().as_bytes())[..32]
        ),
        title: e.title.clone(),
        url: url_of(&e.audio)?,
        length: meta.len(),
        mime: mime(&e.audio).to_string(),
        seconds: e.seconds,
        published: httpdate::fmt_http_date(now),
        published_unix: now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        transcript,
        chapters,
    })
}

/// `path` from `folder`, both resolved, when it is under it.
fn relative_to(path: &Path, folder: &Path) -> Option<PathBuf> {
    let path = std::fs::canonicalize(path).ok()?;
    let folder = std::fs::canonicalize(if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    })
    .ok()?;
    path.strip_prefix(folder).ok().map(Path::to_path_buf)
}

/// The MIME type of an episode's audio, as Apple lists them.
fn mime(path: &Path) -> &'static str {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .as_deref()
    {
        Some("mp3") => "audio/mpeg",
        Some("m4b" | "m4a") => "audio/x-m4a",
        Some("wav") => "audio/wav",
        _ => "application/octet-stream",
    }
}
