//! `hot-document`: one document, 200 clients, 20 of them typing 5 keys/s each
//! for 20 s: the single-document ceiling (Etherpad's users hit a wall at a
//! few hundred authors per pad). It is the fan-out with other defaults, every
//! fan-out flag still accepted; the JSON line is the fan-out's under
//! `"scenario": "hot-document"`.

use crate::fanout::{self, FanoutArgs, Options};

#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("docs", |a| a.default_value("1")),
    mut_arg("clients", |a| a.default_value("200")),
    mut_arg("writers", |a| a.default_value("20")),
    mut_arg("rate", |a| a.default_value("5")),
    mut_arg("duration", |a| a.default_value("20")),
)]
pub struct HotDocumentArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
}

pub async fn run(args: HotDocumentArgs) -> anyhow::Result<bool> {
    fanout::run_as(
        args.fanout,
        Options {
            scenario: "hot-document",
            replicas: true,
        },
    )
    .await
}
