//! `adscope.integrations.v1.CredentialService`.

use adscope_db::Database;
use adscope_proto::integrations::v1 as pb;

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Credentials {
    #[allow(dead_code)] // used as the methods are built
    db: Database,
}

impl Credentials {
    pub fn new(db: Database) -> Self {
        Credentials { db }
    }
}

// Methods not built yet answer UNIMPLEMENTED (the generated defaults).
impl pb::credential_service_server::CredentialService for Credentials {}
