//! The `tessera` binary: parse the command line, set up logging, dispatch. Each
//! command's body lives in `tessera::commands`.

use clap::Parser;

use tessera::cli::{AuditCommand, Cli, ClientsCommand, Command, TrustCommand};
use tessera::commands::{admin, dev, explain, trust_test, NotOk, Usage};
use tessera::config::Config;

/// A refused command prints its message and cause chain, one line, never a backtrace
/// (anyhow's `Debug` adds one whenever `RUST_BACKTRACE` is set).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A "no" (explain refused, trust test failed) has printed its own account.
        Err(e) if e.downcast_ref::<NotOk>().is_some() => std::process::ExitCode::FAILURE,
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `trust test` reports on standard output; its throwaway database's set-up is no news.
    let quiet = matches!(cli.command, Command::Trust(TrustCommand::Test { .. }));
    let _log_guard = tessera::telemetry::init_with_default(if quiet { "warn" } else { "info" });
    let config = || Config::load(cli.config.as_deref()).map_err(anyhow::Error::from);
    match cli.command {
        Command::Clients(ClientsCommand::NewSecret) => admin::new_secret(),
        Command::Trust(TrustCommand::Check { dir, online }) => {
            let config = config()?;
            let dir = dir.unwrap_or_else(|| config.trust.dir.clone());
            admin::trust_check(&dir, &config, online)
        }
        Command::Dev(command) => dev::run(command, config),
        command => {
            let config = config()?;
            actix_web::rt::System::new().block_on(run_async(command, config))
        }
    }
}

async fn run_async(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { shadow_trust } => admin::serve(config, shadow_trust).await,
        Command::Migrate => admin::migrate(&config).await,
        Command::Keys(cmd) => admin::keys(&config, cmd).await,
        Command::Audit(AuditCommand::Prune { older_than }) => {
            admin::audit_prune(&config, older_than).await
        }
        Command::Explain(args) => explain::run(&config, &args).await,
        Command::Trust(TrustCommand::Test { dir }) => {
            let dir = dir.unwrap_or_else(|| config.trust.dir.clone());
            trust_test::run(&config, &dir).await
        }
        Command::Audit(AuditCommand::Tail(args)) => admin::audit_tail(&config, &args).await,
        Command::Audit(AuditCommand::Search(args)) => admin::audit_search(&config, &args).await,
        Command::Trust(TrustCommand::Check { .. }) | Command::Clients(_) | Command::Dev(_) => {
            anyhow::bail!("unreachable command")
        }
    }
}
