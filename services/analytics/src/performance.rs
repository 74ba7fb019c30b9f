//! `adscope.analytics.v1.PerformanceService`.

use adscope_db::Database;
use adscope_proto::analytics::v1 as pb;

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Performance {
    #[allow(dead_code)] // used as the methods are built
    db: Database,
}

impl Performance {
    pub fn new(db: Database) -> Self {
        Performance { db }
    }
}

// Methods not built yet answer UNIMPLEMENTED (the generated defaults).
impl pb::performance_service_server::PerformanceService for Performance {}
