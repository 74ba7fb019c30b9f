-- Distributes adscope's tables across a Citus cluster, run once on the
-- coordinator as the administrator after the first `adscope migrate`, and
-- again (it is idempotent: a table already distributed is skipped) whenever a
-- migration adds a tenant-owned table, after adding that table here.
--
-- The directory of tenants is a reference table, copied to every worker, so
-- each shard can check its foreign keys to it locally. Every tenant-owned
-- table is hash-distributed on tenant_id and colocated with campaigns: one
-- tenant's rows of every table live on the same worker, so the composite
-- primary and foreign keys (all starting with tenant_id), the joins and a
-- tenant-scoped transaction stay on a single node. deploy_manifests.rs fails
-- when a table with a tenant_id column is missing here.
--
-- Parents come before the tables whose foreign keys reference them.

SELECT create_reference_table('tenants')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'tenants'::regclass);

-- The first distributed table starts the colocation group the others join.
SELECT create_distributed_table('campaigns', 'tenant_id', colocate_with => 'none')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'campaigns'::regclass);

SELECT create_distributed_table('ad_sets', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'ad_sets'::regclass);

SELECT create_distributed_table('ads', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'ads'::regclass);

SELECT create_distributed_table('performance_records', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'performance_records'::regclass);

SELECT create_distributed_table('snapshots', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'snapshots'::regclass);

SELECT create_distributed_table('connections', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'connections'::regclass);

SELECT create_distributed_table('sync_jobs', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'sync_jobs'::regclass);

SELECT create_distributed_table('job_leases', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'job_leases'::regclass);

SELECT create_distributed_table('data_keys', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'data_keys'::regclass);

SELECT create_distributed_table('credentials', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'credentials'::regclass);

SELECT create_distributed_table('credential_reminders', 'tenant_id', colocate_with => 'campaigns')
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'credential_reminders'::regclass);
