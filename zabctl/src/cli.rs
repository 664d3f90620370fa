//! The command line: global options (each also from a `ZAB_*` variable)
//! and one subcommand, parsed by clap so help, usage errors, completions
//! and the man page all come from these definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The ensemble `scripts/cluster.sh up` starts.
pub const DEFAULT_SERVERS: &str = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183";
/// Its admin ports.
pub const DEFAULT_ADMINS: &str = "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083";

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the server refused (e.g. NoNode, BadVersion, NoAuth), or a multi failed
  2  usage error (bad flags or arguments), or bad local input (a file)
  3  connection trouble: no server accepted, the session expired, or an
     outcome is unknown (ConnectionLoss)

Reads are linearizable (a sync on the same server first) unless --local.
Data is given as an argument, with --file FILE, or with --file - (stdin);
`get` prints it as is (bytes, not text) and `-o json` as base64.";

/// A command-line client for the zab coordination service.
#[derive(Debug, Parser)]
#[command(
    name = "zabctl",
    version,
    about,
    after_long_help = EXIT_CODES,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Servers, comma-separated `host:port` (names resolved at each
    /// connection attempt).
    #[arg(
        long,
        env = "ZAB_SERVERS",
        default_value = DEFAULT_SERVERS,
        value_delimiter = ',',
        global = true,
        value_parser = parse_host_port,
    )]
    pub servers: Vec<String>,
    /// Admin ports, comma-separated `host:port`, for `cluster status`,
    /// `backup` and `version`.
    #[arg(
        long,
        env = "ZAB_ADMIN",
        default_value = DEFAULT_ADMINS,
        value_delimiter = ',',
        global = true,
        value_parser = parse_host_port,
    )]
    pub admin: Vec<String>,
    /// Output format.
    #[arg(
        short = 'o',
        long,
        env = "ZAB_OUTPUT",
        value_enum,
        default_value_t = Format::Text,
        global = true
    )]
    pub output: Format,
    /// Same as `-o json` (kept for scripts written for older zabctl).
    #[arg(long, global = true, hide = true)]
    pub json: bool,
    /// Identity to prove on the session first, `scheme:credentials`
    /// (e.g. `digest:bob:secret`); repeatable; `;`-separated in ZAB_AUTH.
    #[arg(
        long,
        env = "ZAB_AUTH",
        value_delimiter = ';',
        global = true,
        value_parser = parse_auth,
        hide_env_values = true,
    )]
    pub auth: Vec<(String, String)>,
    /// Session timeout to ask for, in milliseconds (the servers clamp it).
    #[arg(
        long,
        env = "ZAB_SESSION_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub session_timeout_ms: u32,
    /// How long to wait for a server to accept the session, in
    /// milliseconds.
    #[arg(
        long,
        env = "ZAB_CONNECT_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub connect_timeout_ms: u64,
    /// How long each request may wait for its reply, in milliseconds
    /// (past it: exit 3, outcome unknown); 0 waits as long as the session
    /// lives.
    #[arg(
        long,
        env = "ZAB_REQUEST_TIMEOUT_MS",
        default_value_t = 0,
        global = true
    )]
    pub request_timeout_ms: u64,
    /// Work under this node as if it were the root (ZooKeeper's chroot):
    /// `--chroot /app get /x` reads /app/x.
    #[arg(long, env = "ZAB_CHROOT", global = true)]
    pub chroot: Option<String>,
    /// Connect over TLS trusting this CA (PEM).
    #[arg(long, env = "ZAB_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) to present: the session's `x509` identity.
    #[arg(long, env = "ZAB_TLS_CERT", global = true, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "ZAB_TLS_KEY", global = true, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl Global {
    /// The output format, `--json` included.
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.output
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: data as is, stats as `name = value` lines.
    Text,
    /// One JSON document per result (per event for `watch`); data base64.
    Json,
    /// Columns.
    Table,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node (every parent must exist, unless -p).
    Create(Create),
    /// Print a node's data (and its stat with -s).
    Get(Get),
    /// Replace a node's data.
    Set(Set),
    /// Delete a node (it must have no children).
    Delete(Delete),
    /// Delete a node and everything below it.
    #[command(visible_alias = "rmr")]
    Deleteall(PathArg),
    /// List a node's children (the whole subtree with -R).
    Ls(Ls),
    /// Print a node's stat.
    Stat(StatCmd),
    /// Wait until the connected server has every write committed before.
    Sync(PathArg),
    /// Stream the changes at and under a node until interrupted.
    Watch(Watch),
    /// Remove this session's watches on a node (useful in the shell).
    Removewatches(RemoveWatches),
    /// This session's ephemeral nodes (useful in the shell).
    #[command(visible_alias = "getephemerals")]
    Ephemerals(Ephemerals),
    /// How many nodes lie below a node, at any depth.
    #[command(visible_alias = "getallchildrennumber")]
    Count(PathArg),
    /// Print a node's ACL.
    Getacl(PathArg),
    /// Replace a node's ACL.
    Setacl(SetAcl),
    /// Apply several changes at once, all or nothing.
    Multi(Multi),
    /// Print the digest id of USER:PASSWORD (for ACLs and super_digest);
    /// offline.
    Digest(Digest),
    /// Ensemble-wide views from the admin ports.
    #[command(subcommand)]
    Cluster(Cluster),
    /// Take an online backup from the first admin port into FILE.
    Backup(Backup),
    /// Print zabctl's version and each reachable server's.
    Version,
    /// An interactive shell on one session: every command, with history.
    Shell,
    /// Print a shell completion script.
    Completion(Completion),
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Args)]
pub struct PathArg {
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
}

/// Where data comes from.
#[derive(Debug, Args)]
pub struct DataSource {
    /// Data, as text.
    pub data: Option<String>,
    /// Read the data from FILE (`-`: standard input), bytes as they are.
    #[arg(short = 'f', long, conflicts_with = "data")]
    pub file: Option<PathBuf>,
    /// The file's bytes, read before connecting (see `crate::preload`).
    #[arg(skip)]
    pub loaded: Option<Vec<u8>>,
}

#[derive(Debug, Args)]
pub struct Create {
    /// Ephemeral: deleted when this session ends.
    #[arg(short = 'e', long, conflicts_with_all = ["container", "ttl"])]
    pub ephemeral: bool,
    /// Sequential: a 10-digit counter is appended to the name.
    #[arg(short = 's', long, conflicts_with = "container")]
    pub sequential: bool,
    /// Container: deleted by the server once its last child is gone.
    #[arg(short = 'c', long)]
    pub container: bool,
    /// Time to live in ms: deleted once unchanged and childless this long.
    #[arg(short = 't', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: Option<u64>,
    /// Create missing parents too (persistent, empty, open to all).
    #[arg(short = 'p', long)]
    pub parents: bool,
    /// ACL, as zkCli.sh writes it: `world:anyone:r,digest:bob:HASH:cdrwa`.
    #[arg(long, value_parser = parse_acl)]
    pub acl: Option<AclList>,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
    #[command(flatten)]
    pub source: DataSource,
}

#[derive(Debug, Args)]
pub struct Get {
    /// Print the stat too.
    #[arg(short = 's', long)]
    pub stat: bool,
    /// Then wait for the node's next change and print it.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Read this server's view without a sync first.
    #[arg(long)]
    pub local: bool,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct Set {
    /// Only if the node's version is this.
    #[arg(short = 'v', long, allow_negative_numbers = true, default_value_t = -1)]
    pub version: i32,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
    #[command(flatten)]
    pub source: DataSource,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// Only if the node's version is this.
    #[arg(short = 'v', long, allow_negative_numbers = true, default_value_t = -1)]
    pub version: i32,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct Ls {
    /// The whole subtree, one path per line.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print the node's stat too.
    #[arg(short = 's', long, conflicts_with = "recursive")]
    pub stat: bool,
    /// Then wait for the node's children to change and print it.
    #[arg(short = 'w', long, conflicts_with = "recursive")]
    pub watch: bool,
    /// Read this server's view without a sync first.
    #[arg(long)]
    pub local: bool,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct StatCmd {
    /// Then wait for the node to be created, changed or deleted.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Read this server's view without a sync first.
    #[arg(long)]
    pub local: bool,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct Watch {
    /// Only the node itself, not its subtree.
    #[arg(long)]
    pub no_recursive: bool,
    /// Stop after this many events.
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchKind {
    Any,
    Data,
    Children,
    Persistent,
    Recursive,
}

#[derive(Debug, Args)]
pub struct RemoveWatches {
    /// Which watches.
    #[arg(short = 't', long = "type", value_enum, default_value_t = WatchKind::Any)]
    pub kind: WatchKind,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct Ephemerals {
    /// Only paths starting with this (`/app/`, `/app/lock-`).
    #[arg(default_value = "/")]
    pub prefix: String,
}

#[derive(Debug, Args)]
pub struct SetAcl {
    /// Only if the node's ACL version (aversion) is this.
    #[arg(short = 'v', long, allow_negative_numbers = true, default_value_t = -1)]
    pub version: i32,
    /// The node's path, e.g. /app/config.
    #[arg(value_parser = parse_path)]
    pub path: String,
    #[arg(value_parser = parse_acl)]
    pub acl: AclList,
}

#[derive(Debug, Args)]
#[command(after_long_help = crate::multi::FORMAT)]
pub struct Multi {
    /// The operations, one per line (`-`: standard input).
    pub file: PathBuf,
    /// The file's bytes, read before connecting (see `crate::preload`).
    #[arg(skip)]
    pub loaded: Option<Vec<u8>>,
}

#[derive(Debug, Args)]
pub struct Digest {
    /// `user:password`
    pub credentials: String,
}

#[derive(Debug, Subcommand)]
pub enum Cluster {
    /// Each server's role, leader, zxids and counts.
    Status,
    /// Each server's effective configuration (secrets redacted).
    Conf,
    /// Each server's client connections (ZooKeeper's `cons`).
    Cons(Inspect),
    /// Each server's watches, summarized (ZooKeeper's `wchs`).
    Wchs(Inspect),
    /// The sessions and their ephemeral nodes (ZooKeeper's `dump`).
    Dump(Inspect),
}

#[derive(Debug, Args)]
pub struct Inspect {
    /// Entries each list may hold (the server caps it at 100,000).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct Backup {
    /// Where to write it (whole or not at all).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct Completion {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A parsed ACL list (a newtype so clap stores it as one value).
#[derive(Debug, Clone)]
pub struct AclList(pub Vec<zab_client::Acl>);

fn parse_acl(text: &str) -> Result<AclList, String> {
    zab_client::Acl::parse_list(text)
        .map(AclList)
        .ok_or_else(|| {
            format!("{text:?} is not an ACL list (want e.g. world:anyone:r,auth::cdrwa)")
        })
}

fn parse_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not a path (paths start with /)"))
    }
}

fn parse_host_port(text: &str) -> Result<String, String> {
    let text = text.trim();
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_string())
        }
        _ => Err(format!("{text:?} is not host:port")),
    }
}

fn parse_auth(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((scheme, credentials)) if !scheme.is_empty() => {
            Ok((scheme.to_string(), credentials.to_string()))
        }
        _ => Err(format!(
            "{text:?} is not scheme:credentials (e.g. digest:bob:secret)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn incompatible_create_flags_are_usage_errors() {
        for args in [
            &["zabctl", "create", "-c", "-s", "/a"][..],
            &["zabctl", "create", "-e", "-c", "/a"],
            &["zabctl", "create", "-e", "-t", "5", "/a"],
            &["zabctl", "create", "-t", "0", "/a"],
            &["zabctl", "create", "/a", "x", "--file", "f"],
            &["zabctl", "create", "a"],
        ] {
            let err = Cli::try_parse_from(args).expect_err(&format!("{args:?} parsed"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn globals_come_after_the_command_too() {
        let cli = Cli::try_parse_from(["zabctl", "get", "/a", "-o", "json", "--servers", "h:1"])
            .expect("parses");
        assert_eq!(cli.global.format(), Format::Json);
        assert_eq!(cli.global.servers, ["h:1"]);
        let cli = Cli::try_parse_from(["zabctl", "--json", "ls", "/"]).expect("parses");
        assert_eq!(cli.global.format(), Format::Json);
    }

    #[test]
    fn negative_versions_are_versions() {
        let cli = Cli::try_parse_from(["zabctl", "set", "-v", "-1", "/a", "x"]).expect("parses");
        let Command::Set(set) = cli.command else {
            panic!("a set");
        };
        assert_eq!((set.version, set.path.as_str()), (-1, "/a"));
    }
}
