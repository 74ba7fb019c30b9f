//! `adscope`: the operator CLI.
//!
//! - `migrate`: create the service roles and apply the embedded migrations.
//! - `token`: mint a development token (HS256) for grpcurl and demos.
//! - `tenant create` / `tenant list`: the tenant directory.
//! - `dev`: find or start PostgreSQL, migrate, start the three services and
//!   print how to call them.

mod dev;
mod duration;
mod tenant;
mod token;
mod urls;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "adscope", version, about = "adscope operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the service roles if missing and apply pending migrations.
    Migrate {
        /// An owner / administrator URL (a superuser, or a role that may
        /// create roles and grant BYPASSRLS).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Mint a development token signed with the HS256 secret.
    Token(token::TokenArgs),
    /// Manage the tenant directory.
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// Run everything locally: PostgreSQL, migrations, the three services.
    Dev(dev::DevArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate { database_url } => {
            let report = adscope_db::migrate::run(&database_url).await?;
            println_out(&format!(
                "migrations: {} applied ({}), {} already in place",
                report.applied.len(),
                report.applied.join(", "),
                report.already_applied
            ));
            Ok(())
        }
        Command::Token(args) => {
            println_out(&token::mint(&args)?);
            Ok(())
        }
        Command::Tenant { command } => tenant::run(command).await,
        Command::Dev(args) => dev::run(args).await,
    }
}

/// Output for the operator: a CLI's stdout is its interface.
#[allow(clippy::print_stdout)] // the one place the CLI writes its results
fn println_out(line: &str) {
    println!("{line}");
}
