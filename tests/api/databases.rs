//! Databases for tests: a fresh SQLite file, or a fresh schema of the
//! PostgreSQL server the machine runs (`BACKUP_GATEWAY_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/test`). Each test gets its
//! own, so parallel tests and runs never see each other's rows; a schema is
//! dropped when its test ends.

use std::sync::Arc;

use backup_gateway::store::{self, JobStore, StoreOptions};

/// The PostgreSQL server tests use.
pub fn postgres_server() -> String {
    std::env::var("BACKUP_GATEWAY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of one test.
pub enum TestDatabase {
    /// A SQLite file in a temporary folder.
    Sqlite {
        /// `sqlite://...`.
        url: String,
        /// Holds the file.
        _dir: tempfile::TempDir,
    },
    /// A schema of its own on the PostgreSQL server.
    Postgres {
        /// `postgres://...` with the schema as `search_path`.
        url: String,
        /// The schema's name.
        schema: String,
    },
}

impl TestDatabase {
    /// A fresh SQLite file.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        TestDatabase::Sqlite {
            url: format!("sqlite://{}", dir.path().join("jobs.db").display()),
            _dir: dir,
        }
    }

    /// A fresh schema on the PostgreSQL server; panics, naming the server,
    /// when it does not answer.
    pub async fn postgres() -> TestDatabase {
        let server = postgres_server();
        // The creation time in the name lets a later run remove the schemas
        // of runs killed before they could (`.ci/run` drops those over an
        // hour old), never a schema a running test uses.
        let schema = format!(
            "bg_test_{}_{}",
            chrono::Utc::now().timestamp(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = sqlx::PgPool::connect(&server).await.unwrap_or_else(|e| {
            panic!("the tests need PostgreSQL at {server} (set BACKUP_GATEWAY_TEST_POSTGRES): {e}")
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create the test schema");
        admin.close().await;
        let separator = if server.contains('?') { '&' } else { '?' };
        TestDatabase::Postgres {
            url: format!("{server}{separator}options=-c%20search_path%3D{schema}"),
            schema,
        }
    }

    /// The `--database-url` of this database.
    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite { url, .. } | TestDatabase::Postgres { url, .. } => url,
        }
    }

    /// Opens the store on it (migrating it).
    pub async fn store(&self) -> Arc<dyn JobStore> {
        store::connect(&StoreOptions::new(self.url()))
            .await
            .expect("store opens")
    }

    /// Runs raw SQL on it (to damage rows, or to look at them).
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            TestDatabase::Sqlite { url, .. } => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("open SQLite");
                sqlx::raw_sql(sql).execute(&pool).await.expect("SQL runs");
                pool.close().await;
            }
            TestDatabase::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.expect("open PostgreSQL");
                sqlx::raw_sql(sql).execute(&pool).await.expect("SQL runs");
                pool.close().await;
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let TestDatabase::Postgres { schema, .. } = self else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // a thread of its own with a small runtime removes the schema.
        let schema = schema.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = sqlx::PgPool::connect(&postgres_server()).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&admin)
                .await
                .ok()?;
                admin.close().await;
                Some(())
            })
        });
        let _ = dropped.join();
    }
}
