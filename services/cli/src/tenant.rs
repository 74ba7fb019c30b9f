//! `adscope tenant`: the tenant directory, read and written with the
//! administrator URL.

use diesel::QueryableByName;
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TenantCommand {
    /// Add a tenant and print its id.
    Create {
        /// A display name (1–200 characters).
        name: String,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// List tenants: id, status, created, name.
    List {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

#[derive(QueryableByName)]
pub(crate) struct TenantRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: chrono::DateTime<chrono::Utc>,
}

pub(crate) async fn run(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, database_url } => {
            let mut conn = AsyncPgConnection::establish(&database_url).await?;
            let tenant = create(&mut conn, &name).await?;
            crate::println_out(&tenant.id.to_string());
        }
        TenantCommand::List { database_url } => {
            let mut conn = AsyncPgConnection::establish(&database_url).await?;
            for t in list(&mut conn).await? {
                crate::println_out(&format!(
                    "{}\t{}\t{}\t{}",
                    t.id,
                    t.status,
                    t.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    t.name
                ));
            }
        }
    }
    Ok(())
}

pub(crate) async fn create(conn: &mut AsyncPgConnection, name: &str) -> anyhow::Result<TenantRow> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        anyhow::bail!("a tenant name is 1 to 200 characters");
    }
    Ok(diesel::sql_query(
        "INSERT INTO tenants (name) VALUES ($1) RETURNING id, name, status, created_at",
    )
    .bind::<Text, _>(name)
    .get_result(conn)
    .await?)
}

pub(crate) async fn list(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<TenantRow>> {
    Ok(diesel::sql_query(
        "SELECT id, name, status, created_at FROM tenants ORDER BY created_at, id",
    )
    .load(conn)
    .await?)
}
