//! `adscope.analytics.v1.AdSetService`.

use adscope_db::Database;
use adscope_proto::analytics::v1 as pb;

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct AdSets {
    #[allow(dead_code)] // used as the methods are built
    db: Database,
}

impl AdSets {
    pub fn new(db: Database) -> Self {
        AdSets { db }
    }
}

// Methods not built yet answer UNIMPLEMENTED (the generated defaults).
impl pb::ad_set_service_server::AdSetService for AdSets {}
