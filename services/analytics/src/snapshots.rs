//! `adscope.analytics.v1.SnapshotService`.

use adscope_db::Database;
use adscope_proto::analytics::v1 as pb;

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Snapshots {
    #[allow(dead_code)] // used as the methods are built
    db: Database,
}

impl Snapshots {
    pub fn new(db: Database) -> Self {
        Snapshots { db }
    }
}

// Methods not built yet answer UNIMPLEMENTED (the generated defaults).
impl pb::snapshot_service_server::SnapshotService for Snapshots {}
