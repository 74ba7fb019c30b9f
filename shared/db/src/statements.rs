//! The fixed statements of a unit of work, as prepared statements.
//!
//! They are diesel query types with a static query id rather than
//! `batch_execute` strings: a prepared statement is cached once per
//! connection, and, unlike a simple-protocol batch, keeps its place in the
//! pipeline behind a statement that is still being prepared.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Text};
use diesel::{QueryResult, define_sql_function};

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

fixed_statement!(Begin, "BEGIN");
#[cfg(feature = "fleet")]
fixed_statement!(BeginReadOnly, "BEGIN READ ONLY");
fixed_statement!(Commit, "COMMIT");
fixed_statement!(Rollback, "ROLLBACK");

define_sql_function! {
    /// PostgreSQL's `set_config(setting, value, is_local)`.
    fn set_config(setting: Text, value: Text, is_local: Bool) -> Text;
}

/// The setting row-level security policies compare `tenant_id` with.
pub(crate) const TENANT_SETTING: &str = "app.tenant_id";
