//! Test support for adscope: a real PostgreSQL database per test, and tokens.
//!
//! # How a test gets its database
//!
//! ```no_run
//! # async fn demo() {
//! let db = adscope_testing::TestDb::new().await;
//! let url = db.url(adscope_db::ServiceRole::Analytics);
//! // connect with `url` exactly as the analytics service would
//! # }
//! ```
//!
//! 1. **A server.** [`admin_url`] finds a PostgreSQL superuser URL once per
//!    process. If `ADSCOPE_TEST_DATABASE_URL` is set, that is it. Otherwise a
//!    throwaway cluster is made (or reused) in `target/adscope-test-pg/data`
//!    by `adscope-pgcluster`: it installs Debian's `postgresql` when running
//!    as root and the server binaries are missing, runs the server as the
//!    `postgres` OS user, on a free port of 127.0.0.1, with trust
//!    authentication. The cluster stays up after the tests, so the next test
//!    binary (or the next `cargo test`) starts in milliseconds.
//! 2. **A template, migrated once.** The first [`TestDb::new`] in any process
//!    takes an advisory lock, creates `adscope_tpl_<fingerprint>` if needed and
//!    runs `adscope_db::migrate::run` on it, then marks it a template. The
//!    fingerprint changes with the migrations, so a changed schema gets a new
//!    template and an unchanged one is never migrated again.
//! 3. **A database per test.** Each [`TestDb`] is `CREATE DATABASE ..
//!    TEMPLATE adscope_tpl_..`: a file copy, far cheaper than migrating. Tests
//!    never see each other's rows, and the database is dropped (`WITH (FORCE)`)
//!    when the `TestDb` is.
//! 4. **Connecting as a service.** [`TestDb::url`] gives the URL for a
//!    service's own login role (no superuser, row-level security applies), and
//!    [`TestDb::admin_url`] the superuser's, for set-up that must bypass it.
//!
//! Tokens: [`token`], [`fleet_token`] and [`verifier`] share [`TEST_JWT_SECRET`].
//!
//! # Layout
//!
//! - `server`: finding or provisioning the PostgreSQL server.
//! - `database`: the migrated template and [`TestDb`].
//! - `urls`: rewriting connection URLs for a database or a role.
//! - `token`: HS256 tokens and the matching verifier.

mod database;
mod server;
mod token;
mod urls;

pub use database::TestDb;
pub use server::{TEST_DATABASE_URL_ENV, admin_url};
pub use token::{
    TEST_AUDIENCE, TEST_ISSUER, TEST_JWT_SECRET, TEST_PUBLIC_KEYS_PEM, TEST_SIGNING_KEY_PEM,
    fleet_token, key_pair_minter, key_pair_verifier, minter, token, token_for, verifier,
};
