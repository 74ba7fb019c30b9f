//! The `adscope-analytics` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = adscope_analytics::Args::parse()
        .into_config()
        .map_err(|e| anyhow::anyhow!("adscope-analytics: {e}"))?;
    let _telemetry = adscope_telemetry::init("adscope-analytics")?;

    let listener = tokio::net::TcpListener::bind(config.common.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "adscope-analytics listening");
    adscope_analytics::serve_with(config, listener, adscope_server::shutdown::signal()).await
}
