//! `adscope token`: development tokens.

use adscope_tenancy::{FLEET_READ, Minter, Role, TenantId, TokenSpec};

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// A tenant the token may act for (repeatable).
    #[arg(long = "tenant", value_name = "UUID")]
    tenants: Vec<TenantId>,
    /// The principal's role.
    #[arg(long, default_value = "analyst")]
    role: Role,
    /// Grant `fleet:read` (the health service's fleet view).
    #[arg(long)]
    fleet: bool,
    /// How long the token is valid: 90s, 15m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = crate::duration::parse)]
    ttl: std::time::Duration,
    /// The token's subject.
    #[arg(long, default_value = "adscope-dev")]
    subject: String,
    /// The HS256 secret the services verify with.
    #[arg(long, env = "ADSCOPE_JWT_HS256_SECRET", hide_env_values = true)]
    secret: String,
    /// Token issuer.
    #[arg(long, env = "ADSCOPE_JWT_ISSUER", default_value = "adscope")]
    issuer: String,
    /// Token audience.
    #[arg(long, env = "ADSCOPE_JWT_AUDIENCE", default_value = "adscope")]
    audience: String,
}

pub(crate) fn mint(args: &TokenArgs) -> anyhow::Result<String> {
    if args.tenants.is_empty() && !args.fleet {
        anyhow::bail!("give at least one --tenant UUID, or --fleet for a fleet token");
    }
    let minter = Minter::hs256(args.secret.as_bytes(), &args.issuer, &args.audience)?;
    let spec = TokenSpec {
        subject: args.subject.clone(),
        tenants: args.tenants.clone(),
        roles: vec![args.role],
        scopes: if args.fleet {
            vec![FLEET_READ.to_owned()]
        } else {
            vec![]
        },
        ttl: args.ttl,
        not_before: None,
    };
    Ok(minter.mint(&spec)?)
}
