use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use iotfence::{config, diag::Diagnostic, exit, lock, metrics, policy::compile, run};

/// iotfence: per-device egress allowlists for IoT networks, enforced in the
/// kernel with XDP/TC on the router's IoT-facing interface.
///
/// Exit codes: 0 ok, 64 usage error, 65 invalid configuration or policy
/// (nothing was changed), 69 daemon unreachable (status, learn), 71 the
/// kernel refused, 75 another daemon holds the pin directory (learn: the
/// device is being learned already), 77 not permitted (a missing
/// capability; learn: the control token), 78 a configured resource is taken
/// (metrics port).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate, attach (or adopt the pinned datapath) and enforce; SIGHUP
    /// reloads the policy, SIGTERM/SIGINT stop the daemon while enforcement
    /// stays pinned in the kernel.
    Run {
        /// Configuration file (YAML); see README.md for its keys.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a policy (file or directory, with its includes) and/or a
    /// configuration, without touching the kernel. Lints are printed as
    /// warnings; errors exit with 65.
    Check {
        /// Policy file or directory; default: the configuration's `policy`.
        path: Option<PathBuf>,
        /// Configuration file (YAML). Without it, the `dns` and `dhcp`
        /// blocks are checked against a placeholder resolver.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Output format: text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// Also print what this kernel supports and which attach modes will
        /// work (exit 71 when the configuration's mode will not).
        #[arg(long)]
        kernel: bool,
    },
    /// Show a running daemon's devices with their counters, learned
    /// destinations (and the names they came from) and recent violations.
    Status {
        /// Configuration file of the daemon (for its metrics address).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The daemon's metrics address; default: from --config, else
        /// 127.0.0.1:9742.
        #[arg(long)]
        address: Option<std::net::SocketAddr>,
        /// Output format: text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Why DEVICE may or may not reach DESTINATION: the verdict of its
    /// first packet and the path of the decision (which device entry
    /// matched and how, live flows, learned addresses and the names they
    /// came from, the static rules with file:line and the vendor document's
    /// section). Against the running daemon's datapath, or offline with
    /// --policy.
    ///
    /// DEVICE: a device name, MAC or address. DESTINATION:
    /// ADDRESS|NAME[:PORT][/PROTO], e.g. 198.51.100.7:443 (tcp),
    /// [2001:db8:ff::7]:123/udp, 203.0.113.9/icmp (echo request),
    /// api.vendor.example:8883 (which patterns name it, and each address
    /// learned for it).
    Explain {
        device: String,
        destination: String,
        /// Configuration file; default /etc/iotfence/iotfence.yaml.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Explain offline against this policy (file or directory), without
        /// the running daemon's state.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Output format: text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// MUD (RFC 8520) files: import one as a vendor profile, export a
    /// profile as one.
    Mud {
        #[command(subcommand)]
        command: MudCommand,
    },
    /// Draft a profile for DEVICE from what it does: the running daemon
    /// audits it for a while, then puts it back on its profile.
    ///
    /// While learned the device reaches anything, and every flow and DNS
    /// answer of it is recorded past the event rate limit; the daemon ends
    /// learning at the deadline itself, even if this command is interrupted
    /// or killed (or the daemon stops). Writes a draft profile of what it did:
    /// names (three or more siblings as `*.domain`, never a public
    /// suffix), protocols and ports per destination, addresses reached
    /// without DNS flagged, counts and first/last seen as comments; checked
    /// as `iotfence check` would. Ctrl-C ends learning early and still
    /// drafts.
    ///
    /// Needs the daemon's control token (state_dir/control.token): root or
    /// the daemon's user.
    Learn {
        /// The device's name in the policy.
        device: String,
        /// How long to observe: 60s, 10m, 1h (at most a day).
        #[arg(long = "for", default_value = "60s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Configuration file of the daemon.
        #[arg(long, short, default_value = "/etc/iotfence/iotfence.yaml")]
        config: PathBuf,
        /// Write the draft here; default: stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print the JSON Schema of policy files (shipped as
    /// policies/policy.schema.json, for editors).
    Schema,
    /// The privileged part of a start, for the service manager to run
    /// before an unprivileged `run` (ExecStartPre=+ in iotfence.service):
    /// mounts bpffs if missing, creates the pin directory and hands it, the
    /// state and lock directories to OWNER.
    Prepare {
        /// Configuration file of the daemon.
        #[arg(long, short)]
        config: PathBuf,
        /// The user the daemon runs as.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Write the man pages (iotfence.1 and one per command) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Remove iotfence from the kernel: unpin links (enforcement stops),
    /// programs and maps. The only way to turn enforcement off.
    Detach {
        /// Pin directory of the datapath to remove.
        #[arg(long, default_value = config::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Detach even while a daemon is running for this pin directory.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum MudCommand {
    /// Turn a MUD file (JSON) into a vendor profile (YAML).
    ///
    /// The MUD file: ietf-mud with ietf-access-control-list ACLs; the
    /// profile: the shape of policies/vendors/*.yaml. from-device ACEs become egress rules (dst-dnsname: names; networks:
    /// addresses; protocol and destination port), to-device ACEs that open
    /// flows inbound rules, answers ride the device's flows; local-networks,
    /// same-manufacturer, manufacturer, model, controller and my-controller
    /// become site variables the profile requires. What the policy language
    /// cannot say (source ports, TCP flags, ICMP codes, drop actions, ...) is
    /// stated in the profile's `limitations:`, each naming its ACEs.
    Import {
        /// The MUD file (JSON).
        file: PathBuf,
        /// Write the profile here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The profile's name; default: the MUD URL's last path segment.
        #[arg(long)]
        name: Option<String>,
    },
    /// Write PROFILE of a policy as a MUD file (JSON).
    ///
    /// RFC 8520's ietf-mud container with from-device and to-device ACLs per address family, names as ietf-acldns dnsnames,
    /// site variables as MUD classes (controller, my-controller,
    /// local-networks, ...), `use: [dhcp, dns, ntp]` as DHCP and the
    /// registered DNS and NTP controllers. What MUD cannot say (e.g.
    /// `*.name` wildcards, audit mode) is printed on stderr as
    /// `limitation: ...`. The file is checked against the MUD and ACL
    /// modules' shape before it is written.
    Export {
        /// The profile's name.
        profile: String,
        /// Policy file or directory holding the profile.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Configuration file whose policy holds the profile (the running
        /// daemon's); default /etc/iotfence/iotfence.yaml.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where the file will be served (https); default: the URL it was
        /// imported from, else a placeholder under mud.example.com.
        #[arg(long)]
        mud_url: Option<String>,
        /// Write the file here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The file's last-update (RFC 3339); default: now.
        #[arg(long)]
        last_update: Option<String>,
    },
}

fn status(config: Option<PathBuf>, address: Option<std::net::SocketAddr>, json: bool) -> i32 {
    let addr = match (address, config) {
        (Some(a), _) => a,
        (None, Some(c)) => match config::load(&c) {
            Ok(cfg) => match cfg.metrics_listen {
                Some(a) => a,
                None => {
                    eprintln!("{}: metrics are disabled, so is status", c.display());
                    return exit::USAGE;
                }
            },
            Err(diags) => {
                print_diags(&diags, false);
                return exit::DATA;
            }
        },
        (None, None) => config::DEFAULT_METRICS_LISTEN
            .parse()
            .expect("valid default"),
    };
    // A wildcard listen address is reached through loopback.
    let addr = match addr.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => {
            std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        std::net::IpAddr::V6(a) if a.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    match metrics::status::fetch(addr) {
        Ok(doc) if json => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            0
        }
        Ok(doc) => {
            print!("{}", metrics::status::text(&doc));
            0
        }
        Err(e) => {
            eprintln!("iotfence status: {e:#}");
            exit::UNAVAILABLE
        }
    }
}

fn print_diags(diags: &[Diagnostic], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(diags).unwrap_or_default()
        );
    } else {
        for d in diags {
            eprintln!("{d}");
        }
        let errors = diags.iter().filter(|d| d.is_error()).count();
        eprintln!("{errors} problem(s); nothing was changed");
    }
}

fn check(path: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> i32 {
    let cfg = match (&config, &path) {
        (Some(c), _) => match config::load(c) {
            Ok(cfg) => cfg,
            Err(diags) => {
                print_diags(&diags, json);
                return exit::DATA;
            }
        },
        (None, Some(p)) => config::standalone(p),
        (None, None) => {
            eprintln!("iotfence check: give a policy PATH, --config FILE, or both");
            return exit::USAGE;
        }
    };
    let policy_path = path.unwrap_or_else(|| cfg.policy.clone());
    match compile::load_path(&policy_path, &cfg) {
        Ok(policy) => {
            let warnings: Vec<&Diagnostic> = cfg.warnings.iter().chain(&policy.warnings).collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&warnings).unwrap_or_default()
                );
            } else {
                for w in &warnings {
                    eprintln!("{w}");
                }
                // Device variants (`profile@device`) repeat their profile's.
                let limits: usize = policy
                    .profiles
                    .iter()
                    .filter(|p| !p.name.contains('@'))
                    .map(|p| p.limitations.len())
                    .sum();
                println!(
                    "{}: ok ({} profiles, {} devices, {} files, {} warnings, {} known limitations)",
                    policy_path.display(),
                    policy.profiles.len(),
                    policy.devices.len(),
                    policy.files.len(),
                    warnings.len(),
                    limits
                );
            }
            0
        }
        Err(diags) => {
            print_diags(&diags, json);
            exit::DATA
        }
    }
}

/// `check --kernel`: the probe's findings; with a configuration, whether
/// its attach mode will work here.
fn check_kernel(config: Option<PathBuf>, json: bool) -> i32 {
    let k = iotfence::kernel::probe::Kernel::probe();
    if json {
        println!("{}", serde_json::to_string_pretty(&k).unwrap_or_default());
    } else {
        print!("{}", k.report());
    }
    let Some(c) = config else { return 0 };
    let Ok(cfg) = config::load(&c) else {
        return exit::DATA;
    };
    match k.require(cfg.attach) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}: attach: {}: {e}", c.display(), cfg.attach.name());
            exit::OS
        }
    }
}

/// `run`'s capabilities (see `caps`): Err(exit code) after saying which
/// are missing and what for.
fn capable() -> Result<(), i32> {
    let eff = iotfence::caps::effective().map_err(|e| {
        eprintln!("iotfence run: reading this process's capabilities: {e}");
        exit::OS
    })?;
    let missing = iotfence::caps::missing(eff);
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("iotfence run lacks capabilities:");
    for (name, why) in missing {
        eprintln!("  {name}: {why}");
    }
    eprintln!(
        "grant them (AmbientCapabilities= in the unit, as iotfence.service does) or run as root"
    );
    Err(exit::NOPERM)
}

/// The man pages, rendered from the command line's definition.
fn man(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    std::fs::create_dir_all(dir)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join("iotfence.1"), page)?;
    // Commands with commands of their own (`mud import`) get a page each too.
    let mut subs: Vec<(String, clap::Command)> = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("iotfence-{}", sub.get_name());
        for nested in sub
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            subs.push((format!("{name}-{}", nested.get_name()), nested.clone()));
        }
        subs.push((name, sub.clone()));
    }
    for (name, sub) in subs {
        // A one-shot command: the page's name lives until it exits.
        let name: &'static str = name.leak();
        let sub = sub.name(name).version(env!("CARGO_PKG_VERSION"));
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
    }
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IOTFENCE_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let code = match cli.command {
        Command::Check {
            path,
            config,
            format,
            kernel,
        } => {
            let json = format == "json";
            if kernel && path.is_none() && config.is_none() {
                check_kernel(None, json)
            } else {
                match check(path, config.clone(), json) {
                    0 if kernel => check_kernel(config, json),
                    code => code,
                }
            }
        }
        Command::Run { config } => {
            init_tracing();
            let (cfg, mut policy) = match run::validate(&config) {
                Ok(v) => v,
                Err(diags) => {
                    print_diags(&diags, false);
                    return ExitCode::from(exit::DATA as u8);
                }
            };
            if let Err(code) = capable() {
                return ExitCode::from(code as u8);
            }
            match run::start(&cfg, &mut policy) {
                Err(e) => {
                    tracing::error!(error = %e, cause = e.name(), "could not start enforcement");
                    e.exit_code()
                }
                Ok(running) => {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("tokio runtime");
                    match rt.block_on(run::serve(cfg, policy, running)) {
                        Ok(()) => 0,
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "daemon failed");
                            exit::OS
                        }
                    }
                }
            }
        }
        Command::Status {
            config,
            address,
            format,
        } => status(config, address, format == "json"),
        Command::Explain {
            device,
            destination,
            config,
            policy,
            format,
        } => iotfence::explain::cli::run(iotfence::explain::cli::Args {
            device: &device,
            destination: &destination,
            config: config.as_deref(),
            policy: policy.as_deref(),
            json: format == "json",
        }),
        Command::Learn {
            device,
            duration,
            config,
            output,
        } => iotfence::learn::cli::run(iotfence::learn::cli::Args {
            device,
            duration,
            config,
            output,
        }),
        Command::Prepare { config, owner } => match config::load(&config) {
            Err(diags) => {
                print_diags(&diags, false);
                exit::DATA
            }
            Ok(cfg) => match iotfence::prepare::prepare(&cfg, owner.as_deref()) {
                Ok(done) => {
                    for line in done {
                        println!("prepared: {line}");
                    }
                    0
                }
                Err(e) => {
                    eprintln!("iotfence prepare: {e:#}");
                    exit::OS
                }
            },
        },
        Command::Man { dir } => match man(&dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("iotfence man: {e:#}");
                exit::OS
            }
        },
        Command::Mud { command } => match command {
            MudCommand::Import { file, output, name } => {
                iotfence::mud::cli::import_cmd(iotfence::mud::cli::ImportArgs {
                    file: &file,
                    output: output.as_deref(),
                    name: name.as_deref(),
                })
            }
            MudCommand::Export {
                profile,
                policy,
                config,
                mud_url,
                output,
                last_update,
            } => iotfence::mud::cli::export_cmd(iotfence::mud::cli::ExportArgs {
                profile: &profile,
                policy: policy.as_deref(),
                config: config.as_deref(),
                mud_url: mud_url.as_deref(),
                output: output.as_deref(),
                last_update: last_update.as_deref(),
            }),
        },
        Command::Schema => {
            print!("{}", iotfence::policy::doc::schema());
            0
        }
        Command::Detach { pin_dir, force } => {
            init_tracing();
            match lock::holder(&pin_dir) {
                Ok(Some(pid)) if !force => {
                    eprintln!("an iotfence daemon (pid {pid}) is running for {}; stop it first or pass --force", pin_dir.display());
                    return ExitCode::from(exit::USAGE as u8);
                }
                _ => {}
            }
            match iotfence::kernel::attach::detach(&pin_dir) {
                Ok(removed) => {
                    println!(
                        "detached: removed {} pins under {}",
                        removed.len(),
                        pin_dir.display()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("detach failed: {e:#}");
                    exit::OS
                }
            }
        }
    };
    ExitCode::from(code as u8)
}
