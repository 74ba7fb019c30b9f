//! The fixed statements of a unit of work, as prepared statements.
//!
//! They are diesel query types with a static query id rather than
//! `batch_execute` strings: a prepared statement is cached once per
//! connection, and, unlike a simple-protocol batch, keeps its place in the
//! pipeline behind a statement that is still being prepared.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};

macro_rules! fixed_statement {
    ($name:ident, $sql:literal) => {
        #[derive(Debug, Clone, Copy, QueryId)]
        pub(crate) struct $name;

        impl QueryFragment<Pg> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }
    };
}

#[cfg(feature = "fleet")]
fixed_statement!(BeginReadOnly, "BEGIN READ ONLY");
fixed_statement!(Begin, "BEGIN");
fixed_statement!(Commit, "COMMIT");
fixed_statement!(Rollback, "ROLLBACK");

/// The setting row-level security policies compare `tenant_id` with.
pub(crate) const TENANT_SETTING: &str = "app.tenant_id";

diesel::define_sql_function! {
    /// PostgreSQL's `set_config(setting, value, is_local)`.
    fn set_config(
        setting: diesel::sql_types::Text,
        value: diesel::sql_types::Text,
        is_local: diesel::sql_types::Bool,
    ) -> diesel::sql_types::Text;
}
