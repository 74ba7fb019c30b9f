//! The `adscope-health` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = adscope_health::Args::parse();
    let config = args
        .into_config(adscope_health::DEFAULT_ADDR)
        .map_err(|e| anyhow::anyhow!("adscope-health: {e}"))?;
    let _telemetry = adscope_telemetry::init("adscope-health")?;

    let listener = tokio::net::TcpListener::bind(config.common.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "adscope-health listening");
    adscope_health::serve_with(config, listener, adscope_server::shutdown::signal()).await
}
