use clap::Parser;
use std::io::BufRead;
use std::sync::Arc;

use quire_server::config::{Cli, Command, LogFormat, UserCommand};
use quire_server::{AppState, serve};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            init_tracing(config.log_format);
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            let addr = listener.local_addr()?;
            let state = AppState::embedded(config.clone()).await?;
            tracing::info!(%addr, data_dir = %config.data_dir.display(), "quire started");
            println!("Quire is running at http://{addr}/");
            serve(listener, state, shutdown_signal()).await?;
            tracing::info!("quire stopped");
        }
        Command::User(UserCommand::Add(args)) => {
            let store = quire_store::SqliteStore::open(
                &args.data_dir.join("quire.db"),
                quire_store::SqliteOptions::default(),
            )
            .await?;
            eprintln!("Password for {} (one line on standard input):", args.email);
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            let store: Arc<dyn quire_store::AuthStore> = Arc::new(store);
            let user = quire_server::auth_api::create_account(
                store.as_ref(),
                &args.email,
                &args.name,
                password,
                false,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created user {} <{}> ({})", user.name, user.email, user.id);
        }
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("QUIRE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
