//! The live views of `nudge stats` and `nudge journeys`: fetch a snapshot
//! every interval, time it, and redraw the dashboard in place with plain
//! ANSI escape codes, until Ctrl-C. Only used when stdout is a terminal; the
//! dashboards themselves are rendered by `output`.

use std::io::Write as _;
use std::pin::pin;
use std::time::Duration;

use tokio::time::Instant;

use super::output;

/// Cursor home, then each line followed by erase-to-end-of-line, then erase
/// below: the new frame overwrites the old one without a blank flash.
fn paint(frame: &str) -> String {
    let mut out = String::with_capacity(frame.len() + 8 * frame.lines().count() + 16);
    out.push_str("\x1b[H");
    for line in frame.lines() {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

/// The terminal while the view runs: cleared and with the cursor hidden on
/// entry, the cursor shown again on drop (whatever ends the view).
#[derive(Debug)]
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Self> {
        let mut stdout = std::io::stdout().lock();
        // Hide the cursor, clear the screen, cursor home.
        stdout.write_all(b"\x1b[?25l\x1b[2J\x1b[H")?;
        stdout.flush()?;
        Ok(Self)
    }

    fn draw(&self, frame: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(paint(frame).as_bytes())?;
        stdout.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut stdout = std::io::stdout().lock();
        // Show the cursor; the last frame stays on screen. Nothing to do if
        // the terminal is gone.
        let _ = stdout.write_all(b"\x1b[?25h");
        let _ = stdout.flush();
    }
}

/// Redraws the dashboard every `interval` from `fetch` until Ctrl-C, then
/// returns `Ok`. The first fetch's error is returned (wrong address, server
/// down); later ones are shown under the last good frame while it retries.
pub async fn watch<T>(
    interval: Duration,
    mut fetch: impl AsyncFnMut() -> anyhow::Result<T>,
    render: impl Fn(Option<&T>, &T, Duration) -> String,
) -> anyhow::Result<()> {
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    let first = tokio::select! {
        biased;
        signal = &mut ctrl_c => return Ok(signal?),
        first = fetch() => first?,
    };
    let mut shown = (first, Instant::now());
    let mut previous: Option<(T, Instant)> = None;
    let mut error: Option<String> = None;
    let mut next = Instant::now() + interval;
    let screen = Screen::enter()?;
    loop {
        let (before, elapsed) = match &previous {
            Some((snapshot, at)) => (Some(snapshot), shown.1.duration_since(*at)),
            None => (None, Duration::ZERO),
        };
        let dashboard = render(before, &shown.0, elapsed);
        let footer = output::live_footer(interval, error.as_deref());
        screen.draw(&format!("{dashboard}\n\n{footer}"))?;

        tokio::select! {
            biased;
            signal = &mut ctrl_c => return Ok(signal?),
            () = tokio::time::sleep_until(next) => {}
        }
        // A slow fetch delays the next one rather than causing a burst.
        next = (next + interval).max(Instant::now());
        let result = tokio::select! {
            biased;
            signal = &mut ctrl_c => return Ok(signal?),
            result = fetch() => result,
        };
        match result {
            Ok(snapshot) => {
                let arrived = Instant::now();
                previous = Some(std::mem::replace(&mut shown, (snapshot, arrived)));
                error = None;
            }
            Err(failure) => error = Some(format!("{failure:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_overwrite_in_place() {
        assert_eq!(paint("a\nbc"), "\x1b[Ha\x1b[K\nbc\x1b[K\n\x1b[J");
    }
}
