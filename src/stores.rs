//! The stores' delivery rules (`--profile`): one row a store, the only place their numbers live.
//! Each row says what its files are (container, bitrate, sample rate, channels), how narrate
//! prepares them (room tone, loudness target, credits, a retail sample) and what each file is
//! checked against, with where the store publishes it. Where a store publishes no loudness
//! window, the ACX one is narrate's default, and the row says so.
//!
//! Not responsible for building or measuring the files (see `deliver`).

/// The container and codec of a store's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Container {
    /// MPEG-1 Layer III, constant bitrate (`.mp3`).
    Mp3,
    /// AAC-LC in an MPEG-4 audio file (`.m4a`).
    M4a,
}

impl Container {
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Container::Mp3 => "mp3",
            Container::M4a => "m4a",
        }
    }
}

/// An inclusive range a measured figure must fall in.
pub(crate) type Window = (f64, f64);

/// What a store checks on each file it is sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checks {
    /// RMS level (dBFS).
    pub(crate) rms_db: Option<Window>,
    /// Integrated loudness (LUFS).
    pub(crate) lufs: Option<Window>,
    /// Highest true peak (dBTP).
    pub(crate) peak_max_dbtp: f64,
    /// The quietest half second's RMS (dBFS).
    pub(crate) noise_floor_max_db: Option<f64>,
    /// Silence before the first sound and after the last (seconds).
    pub(crate) head_s: Window,
    pub(crate) tail_s: Window,
    /// The longest file (minutes).
    pub(crate) max_minutes: Option<f64>,
    /// The lowest bitrate (kbps) and whether every frame must be at the same rate.
    pub(crate) min_kbps: u32,
    pub(crate) constant_bitrate: bool,
}

/// One store's delivery: what narrate writes into `<output folder>/<name>/` and checks.
#[derive(Debug)]
pub struct Store {
    /// The `--profile` name, also the delivery's folder.
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    /// Where the store publishes these rules.
    pub(crate) source: &'static str,
    pub(crate) container: Container,
    pub(crate) kbps: u32,
    pub(crate) sample_rate: u32,
    pub(crate) channels: u16,
    /// Room tone written before and after each file's narration (ms).
    pub(crate) head_ms: u64,
    pub(crate) tail_ms: u64,
    /// Each file is scaled to this integrated loudness (LUFS), its true peak kept at or under
    /// `peak_ceiling_dbtp` before encoding.
    pub(crate) loudness_target: f64,
    pub(crate) peak_ceiling_dbtp: f64,
    /// Opening and closing credits as files of their own.
    pub(crate) credits: bool,
    /// The store asks for a digital voice to be said in the credits.
    pub(crate) disclose_digital_voice: bool,
    /// A retail sample is part of the delivery (with `--sample`).
    pub(crate) sample: bool,
    pub(crate) checks: Checks,
}

/// ACX's RMS window, noise floor and longest file, which `--audiobook` checks too.
pub(crate) const ACX_RMS_DB: Window = (-23.0, -18.0);
pub(crate) const ACX_NOISE_FLOOR_DB: f64 = -60.0;
pub(crate) const ACX_MAX_MINUTES: f64 = 120.0;

/// ACX's numbers, which the stores that publish none of their own are held to by default.
const ACX_CHECKS: Checks = Checks {
    rms_db: Some(ACX_RMS_DB),
    lufs: None,
    peak_max_dbtp: -3.0,
    noise_floor_max_db: Some(ACX_NOISE_FLOOR_DB),
    head_s: (0.5, 1.0),
    tail_s: (1.0, 5.0),
    max_minutes: Some(ACX_MAX_MINUTES),
    min_kbps: 192,
    constant_bitrate: true,
};

/// ACX's row, which the other audiobook stores are written against (what they change), and
/// whose numbers `--audiobook` checks.
pub(crate) const ACX: Store = Store {
    name: "acx",
    title: "ACX (Audible, Amazon, Apple via ACX)",
    source: "https://help.acx.com/s/article/what-are-the-acx-audio-submission-requirements",
    container: Container::Mp3,
    kbps: 192,
    sample_rate: 44_100,
    channels: 1,
    head_ms: 700,
    tail_ms: 2500,
    loudness_target: -20.0,
    peak_ceiling_dbtp: -3.5,
    credits: true,
    disclose_digital_voice: false,
    sample: true,
    checks: ACX_CHECKS,
};

/// Every store narrate delivers to.
pub(crate) const STORES: &[Store] = &[
    ACX,
    Store {
        name: "inaudio",
        title: "Voices by INaudio (formerly Findaway Voices)",
        source: "https://blog.findawayvoices.com/mastering-your-audiobook-for-findaway-voices-video-deep-dive/",
        disclose_digital_voice: true,
        ..ACX
    },
    Store {
        name: "google-play",
        title: "Google Play Books",
        source: "https://support.google.com/books/partner/answer/7626222",
        kbps: 128,
        credits: false,
        // Google publishes formats and bitrates, no loudness window: ACX's by default.
        checks: Checks {
            min_kbps: 128,
            max_minutes: None,
            ..ACX_CHECKS
        },
        ..ACX
    },
    Store {
        name: "apple",
        title: "Apple Books",
        source: "https://help.apple.com/itc/booksassetguide/en.lproj/itc3d2d0284a.html",
        container: Container::M4a,
        kbps: 256,
        channels: 2,
        credits: false,
        // Apple publishes the encoding (stereo AAC at 256 kbps), no loudness window: ACX's by
        // default. AAC spends fewer bits on pauses, so the file's average is under the rate it
        // was encoded at (about 178 to 188 kbps on the sample book): checked against 128 kbps,
        // the lowest rate any of these stores takes for speech.
        checks: Checks {
            min_kbps: 128,
            constant_bitrate: false,
            max_minutes: None,
            ..ACX_CHECKS
        },
        ..ACX
    },
    Store {
        name: "podcast",
        title: "A podcast host (Apple Podcasts' audio requirements)",
        source: "https://podcasters.apple.com/support/893-audio-requirements",
        container: Container::Mp3,
        kbps: 128,
        sample_rate: 44_100,
        channels: 1,
        head_ms: 500,
        tail_ms: 1000,
        loudness_target: -16.0,
        peak_ceiling_dbtp: -1.5,
        credits: false,
        disclose_digital_voice: false,
        sample: false,
        checks: Checks {
            rms_db: None,
            lufs: Some((-17.0, -15.0)),
            peak_max_dbtp: -1.0,
            noise_floor_max_db: None,
            head_s: (0.0, 5.0),
            tail_s: (0.0, 5.0),
            max_minutes: None,
            min_kbps: 96,
            constant_bitrate: true,
        },
    },
];

/// The store named `name`.
pub(crate) fn store(name: &str) -> Option<&'static Store> {
    STORES.iter().find(|s| s.name == name)
}

/// The names `--profile` takes, for its help and errors.
pub(crate) fn names() -> Vec<&'static str> {
    STORES.iter().map(|s| s.name).collect()
}

/// The stores named, in the order given (the names were checked by [`profile_name`]).
pub(crate) fn chosen(names: &[String]) -> Vec<&'static Store> {
    names.iter().filter_map(|n| store(n)).collect()
}

/// A `--profile` name: one of the stores narrate delivers to.
pub(crate) fn profile_name(name: &str) -> Result<String, String> {
    match store(name) {
        Some(_) => Ok(name.to_string()),
        None => Err(format!(
            "no store profile {name:?}; the profiles are {}",
            names().join(", ")
        )),
    }
}
