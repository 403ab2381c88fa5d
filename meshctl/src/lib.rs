//! `meshctl`, the operator CLI of the mesh: inspect streams, groups, consumers and pending entries,
//! tail a stream, triage and replay the dead-letter stream, rewind a group, trim safely, publish by
//! hand, and probe health (`check`, `top`).
//!
//! The library behind the `meshctl` binary (`src/main.rs` parses, starts a runtime, calls [`run`]
//! and turns the result into an exit code). One module per command family: `streams` (streams,
//! stream, groups, consumers, pending), `tail`, `show`, `dlq` (ls and show in `dlq::list`, replay
//! and purge in `dlq::act`, both over the one selection in `dlq::select`), `mutate` (group seek,
//! trim, publish), `check`, `top`, `timeline` (one correlation id across every stream), and
//! `console` (`meshctl serve`, the web console, whose pages call the same data functions as the
//! commands). `info` gathers the state they share and `dead_letters` reads the dead-letter stream
//! for all of them; `ctx` holds the connection and the exit codes, `fmt` and `position` format and
//! parse what the operator reads and types.
//!
//! Exit codes: 0 ok; `check`: 1 warning, 2 critical; 3 any other failure; 64 bad usage; 65 a bad
//! id, time or value; 66 unknown stream, group or entry; 69 Redis unreachable.

pub mod acl;
mod check;
mod console;
mod ctx;
mod dead_letters;
mod dlq;
mod fmt;
mod info;
mod mutate;
mod position;
mod show;
mod streams;
mod tail;
mod timeline;
mod top;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, parser::ValueSource};

use ctx::Ctx;
pub use ctx::exit;
pub use fmt::is_broken_pipe;

/// Operator CLI of the Redis Streams worker mesh.
// No bare `about` here: it would print the crate's description instead of the line above.
#[derive(Debug, Parser)]
#[command(name = "meshctl", version, propagate_version = true)]
pub struct Cli {
    /// Redis server holding the streams.
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,

    /// Prefix of every Redis key of the mesh.
    #[arg(long, global = true, env = "MESH_STREAM_PREFIX", default_value = "")]
    prefix: String,

    /// Machine-readable output: one JSON document (JSON lines for `tail` and `top`).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every mesh stream: length, first/last entry and age, groups, dead letters.
    Streams,
    /// One stream in depth, with its groups.
    Stream { stream: String },
    /// Per group: consumers, pending, last delivered, entries read, lag.
    Groups { stream: Option<String> },
    /// Consumers of a group: pending, idle, inactive.
    Consumers { stream: String, group: String },
    /// Pending entries of a group: owner, idle time, delivery count.
    Pending(streams::PendingArgs),
    /// Print entries of a stream, and optionally follow it.
    Tail(tail::TailArgs),
    /// One entry of a stream, and where each group stands with it.
    Show { stream: String, id: String },
    /// Every entry of every stream carrying this correlation id, oldest first, with where each
    /// group stands with it, and the dead letters carrying it.
    Timeline { correlation_id: String },
    /// The dead-letter stream: list, show, replay, purge.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Consumer group operations.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Safe trim: remove only what every group has acknowledged (preview; `--yes` to act).
    Trim(mutate::TrimArgs),
    /// Publish an event built as a mesh envelope (preview; `--yes` to act).
    Publish(mutate::PublishArgs),
    /// Health probe: lag, oldest pending age, dead letters. Exit 0 ok, 1 warning, 2 critical.
    Check(check::CheckArgs),
    /// Live view: per stream the rate in, per group the rate out, lag, pending, dead letters.
    Top(top::TopArgs),
    /// The Redis ACL file: one user per service, limited to its keys and streams, and an
    /// `operator` for meshctl; passwords from `MESH_REDIS_PASSWORD_<SERVICE>` and
    /// `MESH_REDIS_PASSWORD_OPERATOR`. Needs no connection.
    Acl(acl::AclArgs),
    /// The web console: server-rendered pages of streams, groups, entries, dead letters (replay
    /// and purge with preview and confirm) and timelines, behind an operator token.
    Serve(console::ServeArgs),
    /// Shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Rewind or skip a group to an id, a time, the start or the end (preview; `--yes` to act).
    Seek(mutate::SeekArgs),
}

impl Cli {
    /// Parses the process's arguments; also returns the global flags typed on the command line
    /// (see [`repeat_args`]), which a preview repeats in the command it suggests.
    pub fn parse_args() -> Result<(Self, Vec<String>), clap::Error> {
        let matches = Self::command().try_get_matches()?;
        let cli = Self::from_arg_matches(&matches)?;
        let repeat = repeat_args(&cli, &matches);
        Ok((cli, repeat))
    }
}

/// The global flags the operator typed, to repeat in a command meshctl suggests (a preview's
/// pinned `--yes` command). Values from the environment or defaults apply again by themselves; a
/// password in the URL is masked, never printed.
fn repeat_args(cli: &Cli, matches: &clap::ArgMatches) -> Vec<String> {
    // A global flag typed after a subcommand is recorded at that subcommand's level.
    let typed = |id: &str| {
        let mut level = Some(matches);
        while let Some(m) = level {
            if m.value_source(id) == Some(ValueSource::CommandLine) {
                return true;
            }
            level = m.subcommand().map(|(_, sub)| sub);
        }
        false
    };
    let mut args = Vec::new();
    if typed("redis_url") {
        args.extend(["--redis-url".to_owned(), ctx::mask_password(&cli.redis_url)]);
    }
    if typed("prefix") {
        args.extend(["--prefix".to_owned(), cli.prefix.clone()]);
    }
    args
}

/// Runs one command; returns its exit code (errors are mapped by [`exit::code_of`]). `repeat`:
/// the global flags to repeat in a suggested command (from [`Cli::parse_args`]).
pub async fn run(cli: Cli, repeat: Vec<String>) -> anyhow::Result<u8> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "meshctl",
            &mut std::io::stdout(),
        );
        return Ok(exit::OK);
    }
    if let Command::Acl(args) = &cli.command {
        acl::acl(&cli.prefix, args)?;
        return Ok(exit::OK);
    }
    let mut ctx = Ctx::connect(&cli.redis_url, &cli.prefix, cli.json).await?;
    ctx.repeat_args = repeat;
    let ctx = &mut ctx;
    match cli.command {
        Command::Streams => streams::streams(ctx).await?,
        Command::Stream { stream } => streams::stream(ctx, &stream).await?,
        Command::Groups { stream } => streams::groups(ctx, stream.as_deref()).await?,
        Command::Consumers { stream, group } => streams::consumers(ctx, &stream, &group).await?,
        Command::Pending(args) => streams::pending(ctx, &args).await?,
        Command::Tail(args) => tail::tail(ctx, &args).await?,
        Command::Show { stream, id } => show::show(ctx, &stream, &id).await?,
        Command::Timeline { correlation_id } => timeline::print(ctx, &correlation_id).await?,
        Command::Serve(args) => console::serve(ctx.clone(), args).await?,
        Command::Dlq { command } => dlq::run(ctx, &command).await?,
        Command::Group {
            command: GroupCommand::Seek(args),
        } => mutate::seek(ctx, &args).await?,
        Command::Trim(args) => mutate::trim(ctx, &args).await?,
        Command::Publish(args) => mutate::publish(ctx, &args).await?,
        Command::Check(args) => return check::check(ctx, &args).await,
        Command::Top(args) => top::top(ctx, &args).await?,
        // Handled above, without a connection.
        Command::Completions { .. } | Command::Acl(_) => {}
    }
    Ok(exit::OK)
}
