//! The bodies of the CLI commands that are more than a call: `main.rs` parses and
//! dispatches, these do the work and print.

pub mod explain;
pub mod trust_test;

use std::io::Write;

/// A command whose answer is "no" (explain of a refused request, a failing `trust test`):
/// exit 1 after its own output, with no error line of its own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotOk(pub &'static str);

/// Writes to standard output; a reader that went away (`| head`) ends the output quietly
/// instead of panicking as `println!` does.
pub struct Out(std::io::BufWriter<std::io::Stdout>);

impl Out {
    pub fn new() -> Self {
        Self(std::io::BufWriter::new(std::io::stdout()))
    }

    /// One line; `false` once the reader has gone.
    pub fn line(&mut self, line: &str) -> bool {
        writeln!(self.0, "{line}").is_ok()
    }

    pub fn flush(&mut self) {
        let _ = self.0.flush();
    }
}

impl Default for Out {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        self.flush();
    }
}
