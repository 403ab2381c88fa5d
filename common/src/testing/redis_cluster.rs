//! A real Redis Cluster per test: six `redis-server --cluster-enabled yes` nodes on free ports,
//! each in its own temp dir, joined by `redis-cli --cluster create … --cluster-replicas 1` into
//! three masters with a replica each. Nodes are killed (`kill -9`) and replicas promoted
//! (`CLUSTER FAILOVER`) by the failover tests. [`TestRedis`] is what tests that run on a single
//! server and on a cluster alike need of either.

use std::{
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::redis_server::RedisServer;
use crate::connection::{Conn, RedisTarget, key_slot};

/// Masters, and replicas per master.
const MASTERS: usize = 3;

/// What a test needs of the Redis it runs on: a single server or a cluster.
pub trait TestRedis: Send + Sync {
    /// The `REDIS_URL` of this Redis (`redis+cluster://…` for a cluster).
    fn url(&self) -> String;

    /// Where it is, for workers and connections.
    fn target(&self) -> RedisTarget {
        RedisTarget::open(&self.url()).expect("redis url")
    }

    /// A fresh managed connection.
    fn connection(&self) -> Conn {
        self.target()
            .command_connection()
            .expect("redis connection")
    }
}

impl<T: TestRedis + ?Sized> TestRedis for &T {
    fn url(&self) -> String {
        (**self).url()
    }
}

impl TestRedis for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }
}

/// A Redis Cluster owned by one test; its nodes are killed when it is dropped.
pub struct RedisCluster {
    /// Behind a lock so a test can kill and restart nodes while it shares the cluster.
    nodes: Mutex<Vec<RedisServer>>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// The node id of its master, for a replica.
    pub master_id: Option<String>,
    pub id: String,
    /// Slot ranges it serves, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts six nodes and creates the cluster; returns when every node says `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..MASTERS * 2)
            .map(|_| RedisServer::start_cluster_node())
            .collect();
        let cli = std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into());
        let status = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cli} (install redis-tools): {e}"));
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self {
            nodes: Mutex::new(nodes),
        };
        cluster.wait_ok_blocking(Duration::from_secs(30));
        cluster
    }

    /// The ports of the nodes that run.
    pub fn live_ports(&self) -> Vec<u16> {
        self.lock()
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.port())
            .collect()
    }

    /// The nodes as one live node sees them.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        for port in self.live_ports() {
            if let Some(out) = cli(port, &["CLUSTER", "NODES"]) {
                return parse_nodes(&out);
            }
        }
        panic!("no cluster node answers");
    }

    /// The port of the master that serves `key`'s slot now.
    pub fn master_of(&self, key: &str) -> u16 {
        self.serving(key)
            .unwrap_or_else(|| panic!("no master serves the slot of {key}"))
    }

    /// The port of the live master that serves `key`'s slot, if one does (not while its
    /// master is failed and no replica has taken over yet).
    pub fn serving(&self, key: &str) -> Option<u16> {
        let slot = key_slot(key.as_bytes());
        self.nodes()
            .into_iter()
            .find(|n| n.master && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .map(|n| n.port)
    }

    /// The port of a live replica of the master on `master_port`, as soon as the nodes know one
    /// (right after a failover the old master is announced as a replica a moment later).
    pub fn replica_of(&self, master_port: u16) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let nodes = self.nodes();
            let master = nodes
                .iter()
                .find(|n| n.port == master_port)
                .expect("master");
            let replica = nodes
                .iter()
                .find(|n| !n.failed && n.master_id.as_deref() == Some(&master.id));
            if let Some(replica) = replica {
                return replica.port;
            }
            assert!(
                Instant::now() < deadline,
                "no replica of {master_port}: {nodes:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of the node on `port`.
    pub fn kill9(&self, port: u16) {
        self.with_node(port, RedisServer::kill9);
    }

    /// Starts the node on `port` again (it rejoins the cluster, as a replica if it was replaced).
    pub fn start_again(&self, port: u16) {
        self.with_node(port, RedisServer::start_again);
    }

    /// `kill -9` of the master of `key`'s slot; waits until its replica has taken over (the
    /// other masters agree after the 1 s node timeout), starts the killed node again (it comes
    /// back as a replica of the new master) and waits until every node is ok. Returns the old
    /// and the new master's ports.
    pub async fn kill_master_of(&self, key: &str) -> (u16, u16) {
        let master = self.master_of(key);
        let replica = self.replica_of(master);
        // A replica that has not finished its first sync cannot be promoted (its data is too
        // old): the slot would stay down. Kill the master only once its replica is in sync.
        wait_link_up(replica).await;
        self.kill9(master);
        let taken = tokio::time::timeout(Duration::from_secs(20), async {
            while self.serving(key) != Some(replica) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            taken.is_ok(),
            "{replica} did not take over from the killed {master}: {:#?}",
            self.nodes()
        );
        self.start_again(master);
        wait_link_up(master).await;
        self.wait_ok(Duration::from_secs(20)).await;
        (master, replica)
    }

    /// Promotes the replica on `port` to master of its master's slots (a manual failover: the
    /// old master stops taking writes, the replica catches up, then takes over). Only a replica
    /// whose link to its master is up can take over, so it waits for that first (a node that
    /// was master a moment ago may still be syncing with its new master).
    pub async fn failover(&self, replica_port: u16) {
        wait_link_up(replica_port).await;
        let reply = cli(replica_port, &["CLUSTER", "FAILOVER"]).unwrap_or_default();
        assert_eq!(reply.trim(), "OK", "CLUSTER FAILOVER on {replica_port}");
    }

    /// Hands the slot of `key` over to a replica of its master (`CLUSTER FAILOVER`, asked again
    /// if a round did not take), and waits until every node is ok with the replica serving it.
    /// Returns the old and the new master's ports.
    pub async fn fail_over_slot_of(&self, key: &str) -> (u16, u16) {
        let master = self.master_of(key);
        let replica = self.replica_of(master);
        for _ in 0..3 {
            self.failover(replica).await;
            // Mid-failover a node may see no master for the slot for a moment (the old one
            // already a replica, the new one's claim not yet known): keep waiting then.
            let taken = tokio::time::timeout(Duration::from_secs(10), async {
                while self.serving(key) != Some(replica) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            if taken.is_ok() {
                self.wait_ok(Duration::from_secs(20)).await;
                return (master, replica);
            }
            eprintln!("CLUSTER FAILOVER on {replica} did not take within 10 s; asking again");
        }
        panic!("the replica {replica} did not take over the slot of {key} from {master}");
    }

    /// Waits until every live node says `cluster_state:ok` (after a failover: the promoted
    /// replica serves the slots, and every node knows it).
    pub async fn wait_ok(&self, timeout: Duration) {
        let ports = self.live_ports();
        tokio::task::spawn_blocking(move || wait_ok_on(&ports, timeout))
            .await
            .expect("waiting for the cluster");
    }

    fn wait_ok_blocking(&self, timeout: Duration) {
        wait_ok_on(&self.live_ports(), timeout);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RedisServer>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_node(&self, port: u16, f: impl FnOnce(&mut RedisServer)) {
        let mut nodes = self.lock();
        let node = nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        f(node);
    }
}

impl TestRedis for RedisCluster {
    fn url(&self) -> String {
        let seeds: Vec<String> = self
            .lock()
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }
}

/// Waits until the replica on `port` is in sync with its master (`master_link_status:up`).
async fn wait_link_up(port: u16) {
    wait_blocking(Duration::from_secs(20), move || {
        cli(port, &["INFO", "replication"])
            .is_some_and(|info| info.contains("master_link_status:up"))
    })
    .await;
}

/// Polls `done` (which may block: it runs `redis-cli`) until it holds, at most `timeout`.
async fn wait_blocking(timeout: Duration, done: impl Fn() -> bool + Send + 'static) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(Instant::now() < deadline, "not done after {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("waiting on the cluster");
}

fn wait_ok_on(ports: &[u16], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let ok = ports.iter().all(|&port| {
            cli(port, &["CLUSTER", "INFO"]).is_some_and(|info| info.contains("cluster_state:ok"))
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster on {ports:?} is not ok after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one `redis-cli` command on a node; its output, or `None` if it did not answer.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let cli = std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into());
    let out = Command::new(cli)
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.starts_with("Could not connect") && !text.starts_with("ERR"))
        .then_some(text)
}

/// Parses `CLUSTER NODES`.
fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1]
                .split(['@', ','])
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let flags = f[2];
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(ClusterNode {
                port,
                master: flags.contains("master"),
                failed: flags.contains("fail") || flags.contains("noaddr"),
                master_id: (f[3] != "-").then(|| f[3].to_owned()),
                id: f[0].to_owned(),
                slots,
            })
        })
        .collect()
}
