//! `adscope.integrations.v1.ConnectionService`.

use adscope_db::Database;
use adscope_proto::integrations::v1 as pb;

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Connections {
    #[allow(dead_code)] // used as the methods are built
    db: Database,
}

impl Connections {
    pub fn new(db: Database) -> Self {
        Connections { db }
    }
}

// Methods not built yet answer UNIMPLEMENTED (the generated defaults).
impl pb::connection_service_server::ConnectionService for Connections {}
