//! What the demo prints: headings, notes and the live progress of an
//! engine (the `updatectl watch` renderer). `--quiet` (and the tests)
//! print nothing; the same code path runs either way.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::cli::updatectl::watch::Meter;
use crate::engine::status::StatusReport;

/// Where the demo's output goes.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    quiet: bool,
    tty: bool,
}

impl Display {
    /// Print to stdout unless `quiet`; rewrite progress lines on a terminal.
    pub fn new(quiet: bool) -> Display {
        Display {
            quiet,
            tty: std::io::stdout().is_terminal(),
        }
    }

    /// A step heading.
    pub fn step(&self, text: &str) {
        self.say(&format!("\n==> {text}"));
    }

    /// A line of output.
    pub fn say(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }

    /// A block of output, indented.
    pub fn block(&self, text: &str) {
        for line in text.lines() {
            self.say(&format!("    {line}"));
        }
    }

    /// A live progress display for one engine.
    pub fn progress(&self) -> Progress {
        Progress {
            display: *self,
            meter: Meter::default(),
            last: String::new(),
            last_decile: None,
            open_line: false,
        }
    }
}

/// Renders status reports as they arrive.
#[derive(Debug)]
pub struct Progress {
    display: Display,
    meter: Meter,
    last: String,
    last_decile: Option<u64>,
    open_line: bool,
}

impl Progress {
    /// Show `report`: on a terminal the download bar rewrites its line;
    /// elsewhere every tenth of the download gets a line.
    pub fn show(&mut self, report: &StatusReport) {
        if self.display.quiet {
            return;
        }
        let line = self.meter.line(report, Instant::now());
        let downloading = report.phase == "downloading";
        if downloading && self.display.tty {
            print!("\r    {line}\x1b[K");
            let _ = std::io::stdout().flush();
            self.open_line = true;
            return;
        }
        if downloading {
            let decile = (report.progress * 10.0).floor() as u64;
            if self.last_decile == Some(decile) {
                return;
            }
            self.last_decile = Some(decile);
        } else if line == self.last {
            return;
        }
        self.end_line();
        println!("    {line}");
        self.last = line;
    }

    /// End a progress line that is still open.
    pub fn finish(&mut self) {
        self.end_line();
    }

    fn end_line(&mut self) {
        if self.open_line {
            println!();
            self.open_line = false;
        }
    }
}
