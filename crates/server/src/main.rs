use clap::Parser;
use std::io::BufRead;

use quire_server::config::{
    Cli, Command, LogFormat, MigrateConfig, ServeConfig, UserAddArgs, UserCommand,
};
use quire_server::{AppState, backends, serve};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(mut config) => {
            init_tracing(config.log_format);
            let node = backends::node_id(&config);
            config.node_id = Some(node.to_string());
            // Every log line names its node. The span is entered on each
            // runtime thread and never left (its guard is forgotten), so it
            // is the root of every span and event on those threads: tasks
            // spawned anywhere carry it without being instrumented one by one.
            // Error level, so that no log filter hides it.
            let span = tracing::error_span!("node", id = %node);
            let thread_span = span.clone();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                // yrs recurses over nested values and types. Updates are
                // bounded to 256 levels before yrs sees them (quire-hub's
                // update_scan and item_index), which its tests show fits
                // in 2 MiB; 8 MiB (reserved, not resident) is the margin.
                .thread_stack_size(8 * 1024 * 1024)
                .on_thread_start(move || std::mem::forget(thread_span.clone().entered()))
                .build()?;
            let _entered = span.enter();
            runtime.block_on(run_server(config))
        }
        Command::Migrate(config) => {
            init_tracing(LogFormat::Text);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run_migrate(config))
        }
        Command::User(UserCommand::Add(args)) => {
            init_tracing(LogFormat::Text);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run_user_add(args))
        }
    }
}

async fn run_user_add(args: UserAddArgs) -> anyhow::Result<()> {
    let store = backends::open_store(&args.store_config()?, 1).await?;
    eprintln!("Password for {} (one line on standard input):", args.email);
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
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
    Ok(())
}

async fn run_server(config: ServeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let state = AppState::open(config.clone()).await?;
    let node = &state.node;
    tracing::info!(%addr, store = node.store, bus = node.bus, "quire started");
    println!("Quire is running at http://{addr}/");
    serve(listener, state, shutdown_signal()).await?;
    tracing::info!("quire stopped");
    Ok(())
}

async fn run_migrate(config: MigrateConfig) -> anyhow::Result<()> {
    backends::migrate(&config).await?;
    println!("The database schema is up to date.");
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("QUIRE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
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
