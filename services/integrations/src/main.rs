//! The `adscope-integrations` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = adscope_integrations::Args::parse()
        .into_config()
        .map_err(|e| anyhow::anyhow!("adscope-integrations: {e}"))?;
    // A key file that is set but unusable stops the binary here, naming it,
    // rather than failing every credential call later.
    adscope_integrations::kms::from_config(config.kms_key_file.as_deref())
        .map_err(|e| anyhow::anyhow!("adscope-integrations: ADSCOPE_KMS_KEY_FILE: {e}"))?;
    let _telemetry = adscope_telemetry::init("adscope-integrations")?;

    let listener = tokio::net::TcpListener::bind(config.common.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "adscope-integrations listening");
    adscope_integrations::serve(config, listener, adscope_server::shutdown::signal()).await
}
