//! PostgreSQL URLs derived from an administrator URL.

use url::Url;

/// `url` pointing at `database` as `user`, without the administrator's
/// password (local clusters use trust or peer authentication; elsewhere set
/// role passwords and pass each service its own URL).
pub(crate) fn for_role(url: &str, database: &str, user: &str) -> anyhow::Result<String> {
    let mut url = with_database(url, database)?;
    url.set_username(user)
        .map_err(|()| anyhow::anyhow!("cannot set a user on this database URL"))?;
    url.set_password(None)
        .map_err(|()| anyhow::anyhow!("cannot clear the password of this database URL"))?;
    Ok(url.into())
}

/// `url` pointing at `database`, same credentials.
pub(crate) fn with_database(url: &str, database: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(url).map_err(|e| anyhow::anyhow!("DATABASE_URL is invalid: {e}"))?;
    url.set_path(&format!("/{database}"));
    Ok(url)
}

/// The database a URL names.
pub(crate) fn database(url: &str) -> anyhow::Result<String> {
    let url = Url::parse(url).map_err(|e| anyhow::anyhow!("DATABASE_URL is invalid: {e}"))?;
    Ok(url.path().trim_start_matches('/').to_owned())
}
