//! Integration tests of the warehouse service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; `support::spawn_app` runs the library's `run` in process, like `main` does.
//! `binary` runs the built executable as a real process (signals, exit codes, `migrate`), and
//! `scale` runs it twice on one database and one consumer group.

mod auth;
mod binary;
mod scale;
mod shipments;
mod support;
mod worker;

use common::testing::TestDb;
use support::spawn_app;

#[tokio::test]
async fn serves_ops_routes_then_stops_cleanly_when_cancelled() {
    let app = spawn_app().await;

    app.assert_ops_routes_then_clean_stop(warehouse::SERVICE, env!("CARGO_PKG_VERSION"))
        .await;
}

#[tokio::test]
async fn serves_its_openapi_document_and_vendored_swagger_ui() {
    let app = spawn_app().await;
    let doc = app
        .assert_openapi(&[
            "/shipments",
            "/shipments/{id}",
            "/shipments/{id}/ship",
            "/shipments/{id}/fail",
        ])
        .await;
    assert!(doc["components"]["schemas"]["Shipment"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn replicas_starting_together_migrate_their_shared_database_once() {
    let db = TestDb::new().await;
    if !db.is_postgres() {
        // Several replicas on one database is a PostgreSQL deployment; a SQLite file belongs to
        // one process (`scripts/up.sh` starts one of each service).
        return;
    }
    let args = common::config::MeshArgs {
        database_url: Some(db.url.clone()),
        ..common::config::MeshArgs::default()
    };
    // `docker compose up --scale warehouse=3`: three processes migrate the same database at once.
    let mut replicas = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let args = args.clone();
        replicas.spawn(async move {
            common::service::connect_and_migrate::<warehouse::Migrator>(warehouse::SERVICE, &args)
                .await
        });
    }
    while let Some(started) = replicas.join_next().await {
        let started = started.expect("replica panicked");
        assert!(started.is_ok(), "a replica failed: {:?}", started.err());
    }
}
