//! The Redis of a [`Mesh`](super::mesh::Mesh): one `redis-server` (which the fault tests kill and
//! start again) or a Redis Cluster of three masters and three replicas (`Options::cluster`).

use common::{
    connection::Conn,
    testing::{RedisCluster, RedisServer, TestRedis},
};

pub enum MeshRedis {
    Server(RedisServer),
    Cluster(RedisCluster),
}

impl TestRedis for MeshRedis {
    fn url(&self) -> String {
        match self {
            Self::Server(server) => server.url(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }
}

impl MeshRedis {
    pub fn url(&self) -> String {
        TestRedis::url(self)
    }

    pub fn connection(&self) -> Conn {
        TestRedis::connection(self)
    }

    /// The one server; the tests that kill it or log in as a service's ACL user run on one.
    fn server(&self) -> &RedisServer {
        match self {
            Self::Server(server) => server,
            Self::Cluster(_) => panic!("this test needs a single redis-server"),
        }
    }

    fn server_mut(&mut self) -> &mut RedisServer {
        match self {
            Self::Server(server) => server,
            Self::Cluster(_) => panic!("this test needs a single redis-server"),
        }
    }

    pub fn url_as(&self, user: &str, password: &str) -> String {
        self.server().url_as(user, password)
    }

    pub fn port(&self) -> u16 {
        self.server().port()
    }

    pub fn kill9(&mut self) {
        self.server_mut().kill9();
    }

    /// A clean `SHUTDOWN` (data kept on disk).
    pub fn stop(&mut self) {
        self.server_mut().stop();
    }

    pub fn start_again(&mut self) {
        self.server_mut().start_again();
    }
}
