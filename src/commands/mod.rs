//! The bodies of the CLI commands that are more than a call: `main.rs` parses and
//! dispatches, these do the work and print.

pub mod admin;
pub mod dev;
pub mod explain;
pub mod trust_test;

use anyhow::Context;

/// A command whose answer is "no" (explain of a refused request, a failing `trust test`):
/// exit 1 after its own output, with no error line of its own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotOk(pub &'static str);

/// A command line that cannot run as given (an unreadable input file): exit 2, like a
/// usage error clap reports, with its one-line message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Standard output for the commands that print: `println!` panics when the reader has
/// gone (`tessera dev id-token --count 5 | head -1` closes the pipe after one line, and
/// Rust ignores SIGPIPE, so the write fails with `BrokenPipe`). A closed pipe here ends the
/// output quietly — the reader asked for no more — and any other write error is returned.
pub struct Lines<W: std::io::Write> {
    out: W,
    closed: bool,
}

impl Lines<std::io::Stdout> {
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }
}

impl<W: std::io::Write> Lines<W> {
    pub fn new(out: W) -> Self {
        Self { out, closed: false }
    }

    /// Writes `line` and a newline; `Ok(false)` once the reader has gone (stop producing).
    pub fn line(&mut self, line: impl std::fmt::Display) -> std::io::Result<bool> {
        if self.closed {
            return Ok(false);
        }
        let written = writeln!(self.out, "{line}");
        self.settle(written)
    }

    /// Flushes what is buffered, a closed pipe again counting as done.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let flushed = self.out.flush();
        self.settle(flushed).map(|_| ())
    }

    fn settle(&mut self, result: std::io::Result<()>) -> std::io::Result<bool> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// What a failed write to standard output says (a closed pipe is not a failure).
pub const STDOUT: &str = "writing to standard output";

/// Prints `lines` to standard output, one each; stops quietly when the reader has gone
/// (see [`Lines`]).
pub fn print_lines<T: std::fmt::Display>(lines: impl IntoIterator<Item = T>) -> anyhow::Result<()> {
    let mut out = Lines::stdout();
    for line in lines {
        if !out.line(line).context(STDOUT)? {
            break;
        }
    }
    out.finish().context(STDOUT)
}

#[cfg(test)]
mod tests {
    use super::Lines;
    use std::io::{self, Write};

    /// Accepts `room` lines, then fails every write with `kind`.
    struct Pipe {
        room: usize,
        kind: io::ErrorKind,
        got: Vec<u8>,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from(self.kind));
            }
            if buf.ends_with(b"\n") {
                self.room -= 1;
            }
            self.got.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly() {
        let mut lines = Lines::new(Pipe {
            room: 1,
            kind: io::ErrorKind::BrokenPipe,
            got: Vec::new(),
        });
        assert!(lines.line("first").unwrap());
        assert!(!lines.line("second").unwrap(), "the reader has gone");
        assert!(!lines.line("third").unwrap(), "and stays gone");
        assert_eq!(lines.out.got, b"first\n");
        lines.finish().unwrap();
    }

    #[test]
    fn other_write_errors_are_returned() {
        let mut lines = Lines::new(Pipe {
            room: 0,
            kind: io::ErrorKind::StorageFull,
            got: Vec::new(),
        });
        assert_eq!(
            lines.line("x").unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
    }
}
