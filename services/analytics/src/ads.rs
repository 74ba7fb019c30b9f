//! `adscope.analytics.v1.AdService`.

use adscope_db::Database;
use adscope_proto::analytics::v1 as pb;

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Ads {
    #[allow(dead_code)] // used as the methods are built
    db: Database,
}

impl Ads {
    pub fn new(db: Database) -> Self {
        Ads { db }
    }
}

// Methods not built yet answer UNIMPLEMENTED (the generated defaults).
impl pb::ad_service_server::AdService for Ads {}
