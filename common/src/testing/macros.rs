//! Macros of the test harness (exported at the crate root).

/// Runs the async test body `$name(redis: &dyn TestRedis)` twice: `$name::on_one_server` on a
/// single `redis-server`, `$name::on_a_cluster` on a Redis Cluster of three masters and three
/// replicas. For integration tests (which depend on `tokio`).
#[macro_export]
macro_rules! on_one_server_and_a_cluster {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn on_one_server() {
                super::$name(&$crate::testing::RedisServer::start()).await
            }

            #[tokio::test]
            async fn on_a_cluster() {
                super::$name(&$crate::testing::RedisCluster::start()).await
            }
        }
    };
}
