//! Connection URLs for one database, as the superuser or as a service role.

use url::Url;

fn parse(url: &str) -> Url {
    Url::parse(url).unwrap_or_else(|e| {
        panic!(
            "not a PostgreSQL URL ({e}); check {}",
            crate::TEST_DATABASE_URL_ENV
        )
    })
}

/// `url` pointing at database `name`, with the same user and password.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let mut url = parse(url);
    url.set_path(&format!("/{name}"));
    url.into()
}

/// `url` pointing at database `name` as `user`, with no password: the local
/// clusters tests use trust authentication.
pub(crate) fn as_user(url: &str, name: &str, user: &str) -> String {
    let mut url = parse(url);
    url.set_path(&format!("/{name}"));
    // Both only fail for URLs that cannot carry credentials, which a parsed postgres:// URL can.
    let _ = url.set_username(user);
    let _ = url.set_password(None);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_and_credentials_kept() {
        let url = with_database(
            "postgres://admin:pw@db.local:6543/postgres?sslmode=disable",
            "t1",
        );
        assert_eq!(url, "postgres://admin:pw@db.local:6543/t1?sslmode=disable");
    }

    #[test]
    fn role_url_has_the_role_and_no_password() {
        let url = as_user(
            "postgres://admin:pw@127.0.0.1:5999/postgres",
            "t2",
            "adscope_analytics",
        );
        assert_eq!(url, "postgres://adscope_analytics@127.0.0.1:5999/t2");
    }
}
