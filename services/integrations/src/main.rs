//! The `adscope-integrations` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = adscope_integrations::Args::parse()
        .into_config()
        .map_err(|e| anyhow::anyhow!("adscope-integrations: {e}"))?;
    let _telemetry = adscope_telemetry::init("adscope-integrations")?;

    let listener = tokio::net::TcpListener::bind(config.common.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "adscope-integrations listening");
    adscope_integrations::serve(config, listener, adscope_server::shutdown::signal()).await
}
