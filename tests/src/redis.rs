//! A throwaway Redis Cluster for tests: `redis-server` processes on free
//! loopback ports in a temporary directory, joined by `redis-cli --cluster
//! create`, killed when dropped.
//!
//! [`RedisCluster::for_test`] skips (returns `None`) when `redis-server` is
//! not installed, unless `NUDGE_REDIS_TESTS=required` (set by `.ci/run`,
//! which installs it), where a missing server fails the test instead.

use crate::TempDir;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Redis Cluster of primaries only, every write fsynced to its
/// append-only file (`appendfsync always`).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: TempDir,
}

#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

impl RedisCluster {
    /// A cluster of `primaries` nodes, or `None` (with a note on stderr)
    /// when `redis-server` is missing and not required.
    pub fn for_test(primaries: usize) -> Option<Self> {
        available().then(|| Self::start(primaries))
    }

    /// A cluster of `primaries` primaries with one replica each, or `None`
    /// as [`RedisCluster::for_test`].
    pub fn with_replicas_for_test(primaries: usize) -> Option<Self> {
        available().then(|| Self::start_with(primaries, 1))
    }

    /// Starts the nodes and joins them into a cluster.
    pub fn start(primaries: usize) -> Self {
        Self::start_with(primaries, 0)
    }

    /// Starts `primaries` primaries with `replicas` replicas each and
    /// joins them into a cluster.
    pub fn start_with(primaries: usize, replicas: usize) -> Self {
        let dir = TempDir::new("redis");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..primaries * (1 + replicas) {
            let port = free_port();
            let child = spawn_node(cluster.dir.path(), port);
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for node in &cluster.nodes {
            wait_for(node.port, "PING", "PONG");
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        for node in &cluster.nodes {
            wait_for(node.port, "CLUSTER INFO", "cluster_state:ok");
        }
        if replicas > 0 {
            // Every replica has caught up with its primary, as both see it.
            for node in &cluster.nodes {
                if cli(node.port, &["ROLE"]).starts_with("slave") {
                    wait_for(node.port, "ROLE", "connected");
                } else {
                    wait_for(node.port, "INFO replication", "state=online");
                }
            }
        }
        cluster
    }

    /// The nodes that are primaries now, by index.
    pub fn primaries(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| {
                node.child.is_some() && cli(node.port, &["ROLE"]).starts_with("master")
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Kills node `index` with SIGKILL.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (at most 20 s) until every live node sees the cluster whole
    /// again (after a failover: a replica promoted in a killed primary's
    /// place).
    pub fn wait_whole(&self) {
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            wait_for(node.port, "CLUSTER INFO", "cluster_state:ok");
        }
    }

    /// The nodes' URLs, for `storage.redis_urls`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }

    /// Kills every node with SIGKILL and starts it again on the same port
    /// and files, then waits for the cluster to be whole: what was fsynced
    /// to the append-only files is all that is left.
    pub fn kill_and_restart_all(&mut self) {
        self.kill_all();
        self.restart_all();
    }

    /// Kills every node with SIGKILL: Redis is gone until
    /// [`RedisCluster::restart_all`].
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts every killed node again on its port and files, then waits for
    /// the cluster to be whole.
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            if node.child.is_none() {
                node.child = Some(spawn_node(self.dir.path(), node.port));
            }
        }
        for node in &self.nodes {
            wait_for(node.port, "PING", "PONG");
        }
        for node in &self.nodes {
            wait_for(node.port, "CLUSTER INFO", "cluster_state:ok");
        }
    }

    /// Runs `redis-cli -p <node's port> args…` and returns its output.
    pub fn cli(&self, node: usize, args: &[&str]) -> String {
        cli(self.nodes[node].port, args)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Whether the Redis tests can run here: `redis-server` and `redis-cli`
/// are installed. Without them, `false` (with a note on stderr), or a
/// failure when `NUDGE_REDIS_TESTS=required`.
pub fn available() -> bool {
    let required = std::env::var("NUDGE_REDIS_TESTS").is_ok_and(|value| value == "required");
    if !installed() {
        assert!(
            !required,
            "NUDGE_REDIS_TESTS=required but redis-server is not installed \
                 (apt-get install redis-server)"
        );
        eprintln!(
            "skipped: redis-server is not installed (NUDGE_REDIS_TESTS=required makes this fail)"
        );
        return false;
    }
    true
}

/// Whether `redis-server` and `redis-cli` run.
fn installed() -> bool {
    ["redis-server", "redis-cli"].iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// A loopback port free now whose cluster bus port (+10,000) is free too.
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("its address").port();
        if port > 55_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn spawn_node(dir: &Path, port: u16) -> Child {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).expect("create the node's directory");
    Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--cluster-node-timeout", "2000"])
        .args(["--appendonly", "yes"])
        .args(["--appendfsync", "always"])
        .args(["--save", ""])
        .arg("--dir")
        .arg(&node_dir)
        .arg("--logfile")
        .arg(node_dir.join("redis.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits (at most 20 s) until `command` on the node answers with `expected`
/// in it.
fn wait_for(port: u16, command: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let args: Vec<&str> = command.split(' ').collect();
    loop {
        let answer = cli(port, &args);
        if answer.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis on port {port} did not answer {command} with {expected}: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
