//! `quire-bench`: the command line over the scenarios in the library.

use clap::{Parser, Subcommand};
use quire_bench::{
    burst, coldload, connections, fanout, hot_document, null_server, saturate, soak, trace,
};

/// Load generator for y-websocket servers (Quire and its peers).
#[derive(Debug, Parser)]
#[command(name = "quire-bench", version, about)]
struct Cli {
    /// Runtime worker threads (default: the CPUs this process may run on,
    /// so `taskset -c 1` gives one).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a sequential editing trace through the server as fast as it
    /// allows, with an observer; the observer's text must equal the trace's.
    Trace(trace::TraceArgs),
    /// D documents × C clients, W writers per document typing at R keys/s:
    /// delivery latency, lost deliveries, convergence.
    Fanout(fanout::FanoutArgs),
    /// A relay with no CRDT and no storage: the ceiling of this machine.
    NullServer(null_server::NullServerArgs),
    /// N idle connections (each on its own document, or all on one): the
    /// server's RSS per connection.
    Connections(connections::ConnectionsArgs),
    /// Connect → synced for large stored documents after a restart
    /// (`populate`, restart the server, `measure`).
    Coldload(coldload::ColdloadArgs),
    /// The fan-out at a rate raised step by step until p99 passes the limit:
    /// the highest delivered updates/s under it.
    Saturate(saturate::SaturateArgs),
    /// One document, 200 clients, 20 typing: the single-document ceiling.
    HotDocument(hot_document::HotDocumentArgs),
    /// One writer sends N keystrokes at once; a slow observer must end with
    /// the same text (reconnecting and resyncing if the server closes it).
    Burst(burst::BurstArgs),
    /// The fan-out held for minutes (default 5 at 18,000 deliveries/s),
    /// reported per interval: latency tails, losses, server RSS and CPU.
    Soak(soak::SoakArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let ok = rt.build()?.block_on(async {
        match cli.command {
            Command::Trace(a) => trace::run(a).await,
            Command::Fanout(a) => fanout::run(a).await,
            Command::NullServer(a) => null_server::run(a).await,
            Command::Connections(a) => connections::run(a).await,
            Command::Coldload(a) => coldload::run(a).await,
            Command::Saturate(a) => saturate::run(a).await,
            Command::HotDocument(a) => hot_document::run(a).await,
            Command::Burst(a) => burst::run(a).await,
            Command::Soak(a) => soak::run(a).await,
        }
    })?;
    if !ok {
        eprintln!("FAILED: a correctness check did not hold (see above)");
        std::process::exit(1);
    }
    Ok(())
}
