//! The shelf of the shared cache in object storage, through the `object_store` crate:
//! `s3://bucket/prefix` (with the standard `AWS_*` variables: endpoint, region, credentials),
//! `gs://bucket/prefix` (`GOOGLE_*`), `az://container/prefix` (`AZURE_*`) and `file:///dir`.
//!
//! Entries are `<prefix>/<first two hex digits>/<key>.entry`, put create-only (a conditional
//! put: `If-None-Match: *` on S3). Redirects are not followed (a store that redirects is
//! misconfigured, and a signed request must not travel elsewhere), and no error narrate shows
//! carries a credential. Not responsible for what an entry holds (see `shared`).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutPayload};

use super::shelf::{Created, MAX_ENTRY_BYTES, Shelf, read_bounded};
use crate::error::UsageError;

/// The object that marks a prefix as a narrate cache; written create-only by the first run.
const MARKER: &str = "narrate-cache.json";

/// A prefix of an object store holding a shared cache.
#[derive(Debug)]
pub(crate) struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The URL as given (object store URLs carry no credentials).
    url: String,
    /// The credentials the environment holds, blanked out of every message.
    secrets: Vec<String>,
}

/// Builds reqwest clients that follow no redirect, with the options object_store asks for.
#[derive(Debug)]
struct NoRedirects;

impl object_store::client::HttpConnector for NoRedirects {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let allow_http = options
            .get_config_value(&object_store::ClientConfigKey::AllowHttp)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!allow_http)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "narrate",
                source: Box::new(e),
            })?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

/// Values of the environment's storage credentials (by the names the stores' SDKs read),
/// so that no message narrate shows can carry one.
fn secrets() -> Vec<String> {
    secrets_in(std::env::vars())
}

/// The credentials among `vars`: a store's variable (`AWS_`, `GOOGLE_`, `AZURE_`,
/// `NARRATE_CACHE`) whose name says key, secret, token, password, credential or SAS; values
/// shorter than four characters are left alone (blanking them would garble every message).
fn secrets_in(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    vars.filter(|(name, value)| {
        let upper = name.to_ascii_uppercase();
        let store = ["AWS_", "GOOGLE_", "AZURE_", "NARRATE_CACHE"]
            .iter()
            .any(|p| upper.starts_with(p));
        let secret = ["KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL", "SAS"]
            .iter()
            .any(|w| upper.contains(w));
        store && secret && value.len() >= 4
    })
    .map(|(_, value)| value)
    .collect()
}

/// Retries that give up in seconds: a store that cannot be reached is said so before anything
/// is sent, not after minutes of backing off.
fn retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// The store of `url` and the prefix in it.
fn store_of(url: &url::Url) -> Result<(Arc<dyn ObjectStore>, String), String> {
    let prefix = url.path().trim_matches('/').to_string();
    let e = |e: object_store::Error| e.to_string();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retries())
                .with_http_connector(NoRedirects)
                .build()
                .map_err(e)?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retries())
                .with_http_connector(NoRedirects)
                .build()
                .map_err(e)?,
        ),
        "az" | "azure" | "abfs" | "abfss" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retries())
                .with_http_connector(NoRedirects)
                .build()
                .map_err(e)?,
        ),
        "file" => {
            let dir = url
                .to_file_path()
                .map_err(|()| "not a local path".to_string())?;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(e)?;
            return Ok((Arc::new(local), String::new()));
        }
        other => {
            return Err(format!(
                "{other}:// is not a store narrate knows (s3://, gs://, az:// or file://)"
            ));
        }
    };
    // The bucket or container is the host; the prefix is the path after it.
    Ok((store, prefix))
}

impl Bucket {
    /// The shelf at `url`, built from the environment's settings; nothing is read yet.
    pub(crate) fn open(url: &str) -> Result<Bucket, UsageError> {
        let secrets = secrets();
        let shown = redact(&without_userinfo(url), &secrets);
        let bad =
            |why: String| UsageError(format!("--cache-url {shown}: {}", redact(&why, &secrets)));
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL; use the store's environment variables"
                    .to_string(),
            ));
        }
        let (store, prefix) = store_of(&parsed).map_err(bad)?;
        let prefix = StorePath::parse(&prefix).map_err(|e| bad(e.to_string()))?;
        Ok(Bucket {
            store,
            prefix,
            url: url.trim_end_matches('/').to_string(),
            secrets,
        })
    }

    fn redact(&self, message: &str) -> String {
        redact(message, &self.secrets)
    }

    fn entry_path(&self, key: &str) -> StorePath {
        self.prefix
            .clone()
            .join(&key[..2])
            .join(format!("{key}.entry").as_str())
    }

    /// Reaches the store before anything is sent: lists the prefix (a bucket that does not
    /// exist, a refused credential and an endpoint that redirects fail here) and puts the
    /// marker create-only (a store that takes no writes or no conditional puts fails here).
    pub(crate) async fn probe(&self) -> Result<(), String> {
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.redact(&explain(&e)))?;
        let marker = self.prefix.clone().join(MARKER);
        let body = PutPayload::from_static(b"{\"narrate_cache\": 1}\n");
        match self
            .store
            .put_opts(&marker, body, PutMode::Create.into())
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(self.redact(&format!("cannot write: {}", explain(&e)))),
        }
    }
}

/// `url` as it may be shown: a user and password in it (which narrate refuses) left out.
fn without_userinfo(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL: whatever stands before an `@` may be a credential.
        Err(_) => url.rsplit('@').next().unwrap_or_default().to_string(),
    }
}

/// An object store error, said plainly where it is a common one.
fn explain(e: &object_store::Error) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("nosuchbucket") || lower.contains("bucket does not exist") {
        return format!("the bucket does not exist ({text})");
    }
    if lower.contains("403") || lower.contains("accessdenied") || lower.contains("signature") {
        return format!("the store refused the credentials ({text})");
    }
    if lower.contains(" 30") && lower.contains("redirect")
        || [" 301", " 302", " 303", " 307", " 308"]
            .iter()
            .any(|s| lower.contains(s))
    {
        return format!("the endpoint redirects, which narrate does not follow ({text})");
    }
    text
}

/// `message` with every secret blanked out.
pub(crate) fn redact(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_string(), |m, s| {
        m.replace(s.as_str(), "[redacted]")
    })
}

impl Shelf for Bucket {
    fn read(&self, key: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, String>> {
        let path = self.entry_path(key);
        async move {
            let got = match self.store.get(&path).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.redact(&explain(&e))),
            };
            if got.meta.size > MAX_ENTRY_BYTES {
                return Err(format!("{path} is {} bytes, too large", got.meta.size));
            }
            let bytes = read_bounded(got.into_stream(), MAX_ENTRY_BYTES).await;
            bytes.map(Some).map_err(|e| self.redact(&e))
        }
        .boxed()
    }

    fn contains(&self, key: &str) -> BoxFuture<'_, Result<bool, String>> {
        let path = self.entry_path(key);
        async move {
            match self.store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.redact(&explain(&e))),
            }
        }
        .boxed()
    }

    fn create(&self, key: &str, entry: Vec<u8>) -> BoxFuture<'_, Result<Created, String>> {
        let path = self.entry_path(key);
        async move {
            let payload = PutPayload::from(entry);
            match self
                .store
                .put_opts(&path, payload, PutMode::Create.into())
                .await
            {
                Ok(_) => Ok(Created::New),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::Exists),
                Err(e) => Err(self.redact(&explain(&e))),
            }
        }
        .boxed()
    }

    fn describe(&self) -> &str {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::{Bucket, explain, redact};

    #[test]
    fn store_errors_are_said_plainly_and_carry_no_secret() {
        let secret = "wJalrXUtnFEMI-K7MDENG".to_string();
        let error = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        };
        for (text, says) in [
            ("<Code>NoSuchBucket</Code>", "the bucket does not exist"),
            (
                "status 403 Forbidden: SignatureDoesNotMatch",
                "refused the credentials",
            ),
            ("Received status 301 Moved Permanently", "redirects"),
        ] {
            let said = redact(&explain(&error(text)), std::slice::from_ref(&secret));
            assert!(said.contains(says), "{text}: {said}");
        }
        let said = redact(
            &format!("key {secret} refused"),
            std::slice::from_ref(&secret),
        );
        assert_eq!(said, "key [redacted] refused");
    }

    #[test]
    fn the_stores_credentials_are_known_by_their_names_and_nothing_else_is() {
        let vars = [
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
            ("AWS_SESSION_TOKEN", "tok-value"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "azure-value"),
            ("GOOGLE_SERVICE_ACCOUNT_KEY", "{json}"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT", "http://store"),
            ("ELEVENLABS_API_KEY", "not-a-store-key"),
            ("HOME_SECRET", "not-a-store-var"),
            ("AWS_SECRET_SHORT", "abc"),
        ];
        let found = super::secrets_in(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(
            found,
            ["s3cr3t-value", "tok-value", "azure-value", "{json}"]
        );
    }

    #[test]
    fn a_url_with_credentials_or_an_unknown_scheme_is_refused_and_a_folder_is_taken() {
        for (url, says) in [
            (
                "s3://user:pass@bucket/x",
                "credentials do not belong in the URL",
            ),
            ("s3://user@bucket/x", "credentials do not belong in the URL"),
            (
                "s3://:pass@bucket/x",
                "credentials do not belong in the URL",
            ),
            ("ftp://host/x", "not a store narrate knows"),
            ("not a url", "--cache-url"),
        ] {
            let why = Bucket::open(url).unwrap_err().0;
            assert!(why.contains(says), "{url}: {why}");
            assert!(!why.contains("user:pass"), "{why}");
        }
        // The URL is still named, without what it should not have held.
        let why = Bucket::open("s3://user:pass@bucket/x").unwrap_err().0;
        assert!(why.starts_with("--cache-url s3://bucket/x: "), "{why}");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/shelf", dir.path().display());
        assert!(Bucket::open(&url).is_ok());
        assert!(dir.path().join("shelf").is_dir());
    }
}
