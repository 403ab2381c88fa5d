//! [`RedisTarget`]: where the mesh's Redis is, parsed from `REDIS_URL`.
//!
//! - `redis://[user:password@]host:port[/db]` (or `rediss://`, `unix://`): one server.
//! - `redis+cluster://[user:password@]host:port[,host:port…]`: a Redis Cluster, found from any
//!   of the listed nodes (seeds); the other nodes are discovered with `CLUSTER SLOTS`. Every
//!   node takes the same credentials.

use std::{collections::BTreeSet, time::Duration};

use redis::{
    Client, ErrorKind, RedisError, RedisResult, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
};

use super::conn::Conn;

/// The scheme that selects a Redis Cluster.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where the mesh's Redis is: one server or a cluster.
#[derive(Clone, Debug)]
pub enum RedisTarget {
    Single(Client),
    /// The seed nodes, each as a `redis://` URL with the credentials.
    Cluster {
        nodes: Vec<String>,
        userinfo: String,
    },
}

/// Connection settings of one connection.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    response: Duration,
    connect: Duration,
}

impl RedisTarget {
    /// Parses a `REDIS_URL` (see the module's documentation).
    pub fn open(url: &str) -> RedisResult<Self> {
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(Self::Single(Client::open(url)?));
        };
        let invalid = |what: &str| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "bad redis+cluster URL",
                what.to_owned(),
            ))
        };
        let (userinfo, hosts) = match rest.rfind('@') {
            Some(at) => (&rest[..=at], &rest[at + 1..]),
            None => ("", rest),
        };
        let hosts = hosts.trim_end_matches('/');
        if hosts.contains(['/', '?', '#']) {
            return Err(invalid("a cluster has no database number or options"));
        }
        let nodes: Vec<String> = hosts
            .split(',')
            .map(|host| format!("redis://{userinfo}{}", host.trim()))
            .collect();
        if hosts.is_empty() || nodes.iter().any(|n| n.ends_with('@') || n.ends_with("//")) {
            return Err(invalid("no host"));
        }
        for node in &nodes {
            Client::open(node.as_str())?;
        }
        Ok(Self::Cluster {
            nodes,
            userinfo: userinfo.to_owned(),
        })
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// A managed connection whose commands time out after `response_timeout` (a blocking
    /// command's connection: longer than its `BLOCK`). Lazy: it connects on first use, so a
    /// service starts while Redis is down and reports not-ready until it comes back.
    pub fn managed(&self, response_timeout: Duration) -> RedisResult<Conn> {
        let timeouts = Timeouts {
            response: response_timeout,
            connect: Duration::from_secs(2),
        };
        match self {
            Self::Single(client) => {
                ConnectionManager::new_lazy_with_config(client.clone(), single_config(timeouts))
                    .map(Conn::Single)
            }
            Self::Cluster { nodes, .. } => Ok(Conn::Cluster(
                cluster_builder(nodes, timeouts)
                    .build()?
                    .get_pending_async_connection_with_config(Default::default()),
            )),
        }
    }

    /// A command connection: short response timeout, never used for blocking commands.
    pub fn command_connection(&self) -> RedisResult<Conn> {
        self.managed(Duration::from_secs(5))
    }

    /// Connects now (a CLI fails fast instead of retrying in the background).
    pub async fn connect(&self, response_timeout: Duration) -> RedisResult<Conn> {
        let timeouts = Timeouts {
            response: response_timeout,
            connect: Duration::from_secs(3),
        };
        match self {
            Self::Single(client) => {
                let config = single_config(timeouts).set_number_of_retries(1);
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(Conn::Single)
            }
            Self::Cluster { nodes, .. } => Ok(Conn::Cluster(
                cluster_builder(nodes, timeouts)
                    .build()?
                    .get_async_connection()
                    .await?,
            )),
        }
    }

    /// One connection to each master (for what has to visit every node: `SCAN`, `INFO`),
    /// found with `CLUSTER SLOTS` on `conn`; on a single server, `conn` itself.
    pub async fn masters(&self, conn: &mut Conn) -> RedisResult<Vec<Conn>> {
        let Self::Cluster { userinfo, .. } = self else {
            return Ok(vec![conn.clone()]);
        };
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
        let mut masters = Vec::new();
        for address in master_addresses(slots) {
            let client = Client::open(format!("redis://{userinfo}{address}"))?;
            let timeouts = Timeouts {
                response: Duration::from_secs(10),
                connect: Duration::from_secs(3),
            };
            let config = single_config(timeouts).set_number_of_retries(1);
            masters.push(Conn::Single(
                ConnectionManager::new_with_config(client, config).await?,
            ));
        }
        Ok(masters)
    }
}

fn single_config(timeouts: Timeouts) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeouts.response))
        .set_connection_timeout(Some(timeouts.connect))
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
}

/// The cluster client's settings. A request that meets a failover (`MOVED`, a refused
/// connection, `CLUSTERDOWN`) is retried after a slot refresh, with waits from 50 ms to 1 s,
/// within one overall `response` timeout: a failover of a few seconds is ridden out, and nothing
/// waits forever.
fn cluster_builder(nodes: &[String], timeouts: Timeouts) -> ClusterClientBuilder {
    ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(timeouts.connect)
        .response_timeout(timeouts.response)
        .retries(12)
        .min_retry_wait(50)
        .max_retry_wait(1000)
}

/// The `host:port` of each master in a `CLUSTER SLOTS` reply, once each, in order.
fn master_addresses(slots: Value) -> BTreeSet<String> {
    let Value::Array(ranges) = slots else {
        return BTreeSet::new();
    };
    ranges
        .into_iter()
        .filter_map(|range| {
            let Value::Array(mut parts) = range else {
                return None;
            };
            if parts.len() < 3 {
                return None;
            }
            let Value::Array(node) = parts.swap_remove(2) else {
                return None;
            };
            let host = match node.first()? {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let Value::Int(port) = node.get(1)? else {
                return None;
            };
            Some(format!("{host}:{port}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_seed_nodes_with_shared_credentials() {
        let target =
            RedisTarget::open("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001").unwrap();
        let RedisTarget::Cluster { nodes, userinfo } = target else {
            panic!("not a cluster");
        };
        assert_eq!(
            nodes,
            [
                "redis://u:p%40ss@10.0.0.1:7000",
                "redis://u:p%40ss@10.0.0.2:7001"
            ]
        );
        assert_eq!(userinfo, "u:p%40ss@");
        assert!(
            !RedisTarget::open("redis://127.0.0.1:6379")
                .unwrap()
                .is_cluster()
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://u:p@",
            "redis+cluster://h:1/0",
            "redis+cluster://h:x",
        ] {
            assert!(RedisTarget::open(bad).is_err(), "{bad}");
        }
    }
}
