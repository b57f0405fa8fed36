//! `vigil ui`: the User Tasks and Active tasks screens in the terminal (ratatui over
//! crossterm). A client of the socket API like every other command: it calls the typed
//! endpoint table through the client `cli::main` built (so every reply has passed the
//! terminal sanitiser), as the caller's uid.
//!
//! `state` and `update` are the pure state machine (`App::update(Event) -> Vec<Effect>`);
//! `effects` does the API calls and follows the event log; `render` draws; `keymap` is the
//! one table of keys, from which the help is generated; `text` puts daemon strings on
//! screen. This file is the driver: the terminal (raw mode and alternate screen, restored
//! on exit, on panic and on SIGTERM/SIGHUP/SIGINT), and one loop that feeds the state
//! machine keys, ticks, answers and event-log news, and runs the effects it returns
//! concurrently, so the screen never waits for the daemon.

pub mod effects;
pub mod keymap;
pub mod render;
pub mod state;
pub mod text;
mod update;

#[cfg(test)]
mod tests;

use std::io::{IsTerminal, Stdout};
use std::time::Duration;

use chrono::{Local, Offset, Utc};
use clap::Args;
use crossterm::event::{
    Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use futures::future::LocalBoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::{CliError, CmdResult};
use crate::client::Client;
use keymap::Key;
use state::{App, Effect, Event};

/// How often the clock ticks (debounce, the queue's poll, ages on screen).
const TICK: Duration = Duration::from_millis(250);

#[derive(Args)]
pub struct UiArgs {
    /// Hide every action (assign, take, close, reopen, Close All, cancel): look, never touch.
    #[arg(long)]
    readonly: bool,
}

fn terminal_error(e: std::io::Error) -> CliError {
    CliError::Failed(format!("the terminal failed: {e}"))
}

/// The terminal in raw mode on the alternate screen while this lives.
struct TerminalMode;

impl TerminalMode {
    fn enter() -> Result<TerminalMode, CliError> {
        crossterm::terminal::enable_raw_mode().map_err(terminal_error)?;
        let mode = TerminalMode;
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        )
        .map_err(terminal_error)?;
        Ok(mode)
    }
}

/// Puts the terminal back as the shell had it.
fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl Drop for TerminalMode {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// A terminal key as the keymap knows it (`None` for keys it does not use).
fn key(k: KeyEvent) -> Option<Key> {
    if k.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    Some(match k.code {
        KeyCode::Char('c') if ctrl => Key::CtrlC,
        KeyCode::Char('u') if ctrl => Key::CtrlU,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

pub async fn run(client: &Client, args: UiArgs) -> CmdResult {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(CliError::Failed(
            "`vigil ui` needs a terminal on stdin and stdout; in a script use `vigil tasks` \
             and `vigil queue`"
                .to_owned(),
        ));
    }
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGHUP, SIGINT])
        .map_err(|e| CliError::Failed(format!("cannot watch for signals: {e}")))?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    let mode = TerminalMode::enter()?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(terminal_error)?;
    let tz = Local::now().offset().fix();
    let mut app = App::new(
        client.socket().display().to_string(),
        args.readonly,
        Utc::now(),
        tz,
    );
    let height = terminal.size().map_err(terminal_error)?.height;
    app.list.rows = render::table_rows(height);
    let result = drive(client, &mut app, &mut terminal, &mut signals).await;
    drop(terminal);
    drop(mode);
    result
}

async fn drive(
    client: &Client,
    app: &mut App,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    signals: &mut signal_hook_tokio::Signals,
) -> CmdResult {
    let (tx, mut news) = tokio::sync::mpsc::unbounded_channel();
    let follower = effects::follow(client, tx);
    tokio::pin!(follower);
    // The follower ends only when the daemon refuses the stream; a finished future is not
    // polled again.
    let mut following = true;
    let mut pending: FuturesUnordered<LocalBoxFuture<'_, Option<Event>>> = FuturesUnordered::new();
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut effects = app.start();
    loop {
        for effect in effects.drain(..) {
            if effect == Effect::Quit {
                return Ok(());
            }
            pending.push(Box::pin(effects::run(client, effect)));
        }
        terminal
            .draw(|frame| render::draw(frame, app))
            .map_err(terminal_error)?;
        let event = tokio::select! {
            Some(answer) = pending.next(), if !pending.is_empty() => answer,
            Some(news) = news.recv() => Some(news),
            input = keys.next() => match input {
                Some(Ok(TermEvent::Key(k))) => key(k).map(Event::Key),
                Some(Ok(TermEvent::Resize(_, height))) => Some(Event::Resize {
                    rows: render::table_rows(height),
                }),
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(terminal_error(e)),
                None => return Ok(()),
            },
            _ = tick.tick() => Some(Event::Tick(Utc::now())),
            () = &mut follower, if following => {
                following = false;
                None
            }
            _ = signals.next() => return Ok(()),
        };
        if let Some(event) = event {
            effects = app.update(event);
        }
    }
}
