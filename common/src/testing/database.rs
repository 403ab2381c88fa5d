//! A database of its own for each test: a SQLite file in a temp dir, or a new PostgreSQL
//! database on the server `TEST_DATABASE_URL` names (dropped again with the test).

use std::path::PathBuf;

use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use tempfile::TempDir;

use crate::db;

/// A database of its own for one test: a SQLite file in a temp dir, or — when
/// `TEST_DATABASE_URL` names a PostgreSQL server — a new database created on it.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
    /// On PostgreSQL: the server's URL and the database's name, dropped with the `TestDb` so that
    /// a full run does not leave hundreds of databases (and GBs of disk) behind.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if base.starts_with("postgres") => Self::on_postgres(&base).await,
            _ => Self::sqlite(),
        }
    }

    /// A new database on the PostgreSQL server at `base` (a URL of any database on it, such as a
    /// `PostgresCluster`'s), dropped with the `TestDb`.
    pub async fn on_postgres(base: &str) -> Self {
        let name = format!("mesh_test_{}", uuid::Uuid::new_v4().simple());
        let admin = db::connect(base)
            .await
            .expect("connect to the PostgreSQL server");
        use sea_orm::ConnectionTrait;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        Self {
            url: replace_db_name(base, &name),
            _dir: None,
            postgres: Some((base.to_owned(), name)),
        }
    }

    /// A SQLite file of its own in a temp dir.
    pub fn sqlite() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mesh-db-")
            .tempdir()
            .expect("temp dir for sqlite");
        let path: PathBuf = dir.path().join("test.db");
        Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            _dir: Some(dir),
            postgres: None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    /// A plain connection to this SQLite file, outside every pool: "another process" that can
    /// take the file's write lock (`BEGIN IMMEDIATE`; in WAL mode readers go on, every writer
    /// waits) and give it back (`ROLLBACK`).
    pub async fn other_sqlite_connection(&self) -> sea_orm::sqlx::SqliteConnection {
        assert!(!self.is_postgres(), "not a SQLite database: {}", self.url);
        let path = self
            .url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap_or_default();
        <sea_orm::sqlx::SqliteConnection as sea_orm::sqlx::Connection>::connect(&format!(
            "sqlite://{path}"
        ))
        .await
        .expect("a connection of its own to the SQLite file")
    }

    /// Connects and runs the migrator `M`.
    pub async fn connect<M: MigratorTrait>(&self) -> DatabaseConnection {
        let conn = db::connect(&self.url).await.expect("connect test database");
        M::up(&conn, None).await.expect("migrate test database");
        conn
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL database, closing the connections still open on it (the test's pools,
    /// a service binary being torn down). Runs on a thread of its own with its own runtime, as
    /// `Drop` cannot await and may run inside the test's runtime; failures are only reported.
    fn drop(&mut self) {
        let Some((base, name)) = self.postgres.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                let admin = db::connect(&base).await.map_err(|e| e.to_string())?;
                let result = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
                result.map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop a test database: {e}"),
            Err(_) => eprintln!("warning: dropping a test database panicked"),
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}
