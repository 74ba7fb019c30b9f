//! The `adscope-analytics` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = adscope_analytics::Args::parse();
    let config = args
        .common
        .into_config(adscope_analytics::DEFAULT_ADDR)
        .map_err(|e| anyhow::anyhow!("adscope-analytics: {e}"))?;
    let _telemetry = adscope_telemetry::init("adscope-analytics")?;

    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "adscope-analytics listening");
    adscope_analytics::serve(config, listener, adscope_server::shutdown::signal()).await
}
