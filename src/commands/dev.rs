//! The `dev` commands: demo tokens, the demo authorization server, `dev inspect`.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::DevCommand;
use crate::clock::SystemClock;
use crate::config::Config;

use super::{print_lines, Lines, STDOUT};

/// Runs a `dev` command; `config` loads the configuration when the command needs it.
pub fn run(command: DevCommand, config: impl Fn() -> anyhow::Result<Config>) -> anyhow::Result<()> {
    let dir = |given: Option<PathBuf>| -> anyhow::Result<PathBuf> {
        match given {
            Some(d) => Ok(d),
            None => Ok(config()?.trust.dir),
        }
    };
    match command {
        DevCommand::IdToken(args) => {
            let dir = dir(args.dir.clone())?;
            print_lines(crate::dev::mint_id_tokens(&dir, &args, &SystemClock)?)
        }
        DevCommand::SamlAssertion(args) => {
            let config = config()?;
            let dir = args.dir.clone().unwrap_or_else(|| config.trust.dir.clone());
            let broker = config.broker_identity();
            print_lines(crate::dev::saml::mint_saml_assertions(
                &dir,
                &args,
                &broker,
                &SystemClock,
            )?)
        }
        DevCommand::DpopProof(args) => {
            let htu = match &args.htu {
                Some(u) => u.clone(),
                None => config()?.token_endpoint(),
            };
            print_lines(crate::dev::dpop::mint_proofs(&args, &htu, &SystemClock)?)
        }
        DevCommand::OpaqueToken(args) => {
            let dir = dir(args.dir.clone())?;
            let demo = crate::dev::opaque::DemoAs::load(&dir, &args.issuer)?;
            let lifetime = i64::try_from(args.lifetime.as_secs()).unwrap_or(i64::MAX);
            let mut out = Lines::stdout();
            for i in 1..=args.count {
                let sub = if args.count > 1 {
                    format!("{}-{i}", args.sub)
                } else {
                    args.sub.clone()
                };
                let token = demo.mint(&sub, &args.scope, &args.claims, lifetime, &SystemClock)?;
                if !out.line(token).context(STDOUT)? {
                    break;
                }
            }
            out.finish().context(STDOUT)
        }
        DevCommand::OpaqueAs {
            issuer,
            listen,
            dir: given,
        } => {
            let dir = dir(given)?;
            let demo = crate::dev::opaque::DemoAs::load(&dir, &issuer)?;
            eprintln!("demo authorization server: POST http://{listen}/introspect (Ctrl-C stops)");
            actix_web::rt::System::new()
                .block_on(crate::http::demo_as::serve(
                    std::sync::Arc::new(demo),
                    listen,
                ))
                .with_context(|| format!("serving on {listen}"))?;
            Ok(())
        }
        DevCommand::Inspect { jwks_url, token } => {
            let token = if token == "-" {
                std::io::read_to_string(std::io::stdin())?.trim().to_owned()
            } else {
                token
            };
            actix_web::rt::System::new().block_on(crate::dev::inspect(&jwks_url, &token))
        }
    }
}
