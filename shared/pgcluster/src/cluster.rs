//! A throwaway PostgreSQL cluster in a directory of its own: made, started or reused.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::ClusterError;
use crate::binaries::{find_server_binaries, major_version};
use crate::port::{
    pick_free_port, port_from_postmaster_pid, port_is_free, read_port_file, write_port_file,
};
use crate::process::{RunAs, run, running_as_root, succeeds, tail, user_ids};

/// The OS user that runs PostgreSQL when we are root.
const POSTGRES_USER: &str = "postgres";

/// How many fresh ports to try when the chosen one is taken between probe and start.
const START_ATTEMPTS: usize = 3;

/// Seconds `pg_ctl -w` waits for the server to accept connections.
const START_TIMEOUT_SECS: &str = "120";

/// Unix socket paths longer than this do not fit in `sockaddr_un` (108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// Server settings that trade durability for speed: the data is thrown away anyway.
const SERVER_SETTINGS: &str = "-c listen_addresses=127.0.0.1 -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off -c max_connections=300";

/// A running PostgreSQL cluster on 127.0.0.1 with trust authentication.
///
/// Dropping it leaves the server running, so that several processes (test binaries,
/// repeated runs) share one cluster; [`Cluster::stop`] shuts it down.
#[derive(Debug, Clone)]
pub struct Cluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as: RunAs,
}

/// The files that live next to a data directory `<parent>/<name>`.
#[derive(Debug)]
struct Layout {
    data_dir: PathBuf,
    parent: PathBuf,
    port_file: PathBuf,
    lock_file: PathBuf,
    log_file: PathBuf,
    socket_dir: PathBuf,
}

impl Layout {
    fn new(data_dir: &Path) -> Result<Self, ClusterError> {
        let data_dir = std::path::absolute(data_dir)
            .map_err(|e| ClusterError::io("could not resolve", data_dir, e))?;
        let parent = data_dir.parent().unwrap_or(Path::new("/")).to_path_buf();
        let name = data_dir
            .file_name()
            .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            port_file: parent.join(format!("{name}.port")),
            lock_file: parent.join(format!("{name}.lock")),
            log_file: parent.join(format!("{name}.log")),
            socket_dir: parent.join(format!("{name}.sock")),
            data_dir,
            parent,
        })
    }

    /// The socket directory for `port`: next to the data when its path is short and
    /// needs no shell quoting (pg_ctl hands `-o` to a shell), else one under /tmp.
    fn socket_dir_for(&self, port: u16) -> PathBuf {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{port}"));
        let plain = self
            .socket_dir
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
        if plain && socket.as_os_str().len() <= MAX_SOCKET_PATH {
            self.socket_dir.clone()
        } else {
            PathBuf::from(format!("/tmp/adscope-pg-sock-{port}"))
        }
    }
}

impl Cluster {
    /// Makes sure a cluster runs in `data_dir`, using the server binaries that
    /// [`find_server_binaries`] finds.
    ///
    /// A cluster already running there is reused; otherwise the directory is
    /// initialised if needed and the server started on a free port, which is kept in
    /// `<data_dir>.port` so later callers find it. Concurrent callers, in this process
    /// or others, are serialised by a lock on `<data_dir>.lock`.
    pub fn ensure_running(data_dir: &Path) -> Result<Cluster, ClusterError> {
        let bin_dir = find_server_binaries()?;
        Self::ensure_running_with(&bin_dir, data_dir)
    }

    /// Like [`Cluster::ensure_running`], with the server binaries in `bin_dir`.
    pub fn ensure_running_with(bin_dir: &Path, data_dir: &Path) -> Result<Cluster, ClusterError> {
        let layout = Layout::new(data_dir)?;
        std::fs::create_dir_all(&layout.parent)
            .map_err(|e| ClusterError::io("could not create", &layout.parent, e))?;

        // PostgreSQL refuses to run as root, so root hands the cluster to `postgres`.
        let owner = if running_as_root() {
            Some(user_ids(POSTGRES_USER).ok_or(ClusterError::NoPostgresUser)?)
        } else {
            None
        };
        let run_as = match owner {
            Some(_) => RunAs::User(POSTGRES_USER.to_owned()),
            None => RunAs::Current,
        };

        let lock = File::create(&layout.lock_file)
            .map_err(|e| ClusterError::io("could not create", &layout.lock_file, e))?;
        lock.lock()
            .map_err(|e| ClusterError::io("could not lock", &layout.lock_file, e))?;

        if let Some((uid, gid)) = owner {
            hand_over(&layout.parent, uid, gid)?;
            if layout.data_dir.exists() {
                hand_over(&layout.data_dir, uid, gid)?;
            }
            check_traversable(&run_as, &layout.parent)?;
        }

        let mut cluster = Cluster {
            bin_dir: bin_dir.to_owned(),
            data_dir: layout.data_dir.clone(),
            port: 0,
            run_as,
        };

        if let Some(port) = cluster.running_port(&layout)? {
            cluster.port = port;
            tracing::info!(data_dir = %cluster.data_dir.display(), port, "reusing running PostgreSQL cluster");
            return Ok(cluster);
        }

        cluster.initialise_if_needed()?;
        cluster.start(&layout, owner)?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the superuser on the maintenance database.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://{POSTGRES_USER}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The TCP port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Shuts the server down (fast mode: open sessions are ended) and waits for it.
    pub fn stop(&self) -> Result<(), ClusterError> {
        let data_dir = self.data_dir.to_string_lossy();
        let cmd = self.run_as.command(
            &self.bin_dir.join("pg_ctl"),
            &["-D", &data_dir, "-m", "fast", "-w", "stop"],
        );
        run(cmd)?;
        tracing::info!(data_dir = %self.data_dir.display(), port = self.port, "stopped PostgreSQL cluster");
        Ok(())
    }

    /// The port of a server already running in the data directory, if any.
    fn running_port(&self, layout: &Layout) -> Result<Option<u16>, ClusterError> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let Ok(pid_content) = std::fs::read_to_string(&pid_file) else {
            return Ok(None);
        };
        let data_dir = self.data_dir.to_string_lossy();
        if !succeeds(
            self.run_as
                .command(&self.bin_dir.join("pg_ctl"), &["-D", &data_dir, "status"]),
        ) {
            // A stale pid file from a server that died; pg_ctl start copes with it.
            return Ok(None);
        }

        // The pid file is the server's own word; the port file only helps a stopped cluster.
        let port = match port_from_postmaster_pid(&pid_content) {
            Some(port) => port,
            None => match read_port_file(&layout.port_file)? {
                Some(port) => port,
                None => return Ok(None),
            },
        };
        if read_port_file(&layout.port_file).ok().flatten() != Some(port) {
            write_port_file(&layout.port_file, port)?;
        }
        Ok(Some(port))
    }

    /// Runs `initdb` unless the data directory already holds a cluster of our version.
    fn initialise_if_needed(&self) -> Result<(), ClusterError> {
        let expected = major_version(&self.bin_dir)?;
        let version_file = self.data_dir.join("PG_VERSION");
        if let Ok(found) = std::fs::read_to_string(&version_file) {
            let found = found.trim().to_owned();
            if !expected.is_empty() && found != expected {
                return Err(ClusterError::VersionMismatch {
                    data_dir: self.data_dir.clone(),
                    found,
                    expected,
                });
            }
            return Ok(());
        }
        if let Ok(mut entries) = std::fs::read_dir(&self.data_dir)
            && entries.next().is_some()
        {
            return Err(ClusterError::NotADataDir(self.data_dir.clone()));
        }

        tracing::info!(data_dir = %self.data_dir.display(), version = %expected, "initialising PostgreSQL cluster");
        let data_dir = self.data_dir.to_string_lossy();
        let cmd = self.run_as.command(
            &self.bin_dir.join("initdb"),
            &[
                "-D",
                &data_dir,
                "-U",
                POSTGRES_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                // A fixed locale: the host's may be unset or not generated.
                "--locale=C",
                "--no-sync",
            ],
        );
        run(cmd)?;
        Ok(())
    }

    /// Starts the server on the remembered port if it is free, else on a fresh one.
    fn start(&mut self, layout: &Layout, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
        let mut port = match read_port_file(&layout.port_file)? {
            Some(port) if port_is_free(port) => port,
            _ => pick_free_port()?,
        };

        let mut attempt = 1;
        loop {
            write_port_file(&layout.port_file, port)?;
            let socket_dir = layout.socket_dir_for(port);
            std::fs::create_dir_all(&socket_dir)
                .map_err(|e| ClusterError::io("could not create", &socket_dir, e))?;
            if let Some((uid, gid)) = owner {
                hand_over(&socket_dir, uid, gid)?;
            }

            tracing::info!(data_dir = %self.data_dir.display(), port, "starting PostgreSQL cluster");
            let options = format!("-p {port} -k {} {SERVER_SETTINGS}", socket_dir.display());
            let data_dir = self.data_dir.to_string_lossy();
            let log_file = layout.log_file.to_string_lossy();
            let cmd = self.run_as.command(
                &self.bin_dir.join("pg_ctl"),
                &[
                    "-w",
                    "-t",
                    START_TIMEOUT_SECS,
                    "-D",
                    &data_dir,
                    "-l",
                    &log_file,
                    "-o",
                    &options,
                    "start",
                ],
            );
            let Err(err) = run(cmd) else {
                self.port = port;
                return Ok(());
            };

            let log_tail = std::fs::read_to_string(&layout.log_file)
                .map(|log| tail(&log))
                .unwrap_or_default();
            let port_taken =
                log_tail.contains("could not bind") || log_tail.contains("already in use");
            if !port_taken || attempt == START_ATTEMPTS {
                tracing::warn!(error = %err, "pg_ctl start failed");
                return Err(ClusterError::StartFailed {
                    data_dir: self.data_dir.clone(),
                    log: layout.log_file.clone(),
                    tail: if log_tail.is_empty() {
                        err.to_string()
                    } else {
                        log_tail
                    },
                });
            }
            tracing::warn!(
                port,
                "port taken before the server could bind it; trying another"
            );
            attempt += 1;
            port = pick_free_port()?;
        }
    }
}

/// Gives `path` to the PostgreSQL user (not recursively: what it makes inside is its own).
fn hand_over(path: &Path, uid: u32, gid: u32) -> Result<(), ClusterError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| ClusterError::io("could not chown to the postgres user", path, e))
}

/// Fails with the first directory on the way to `dir` that `run_as` cannot enter.
fn check_traversable(run_as: &RunAs, dir: &Path) -> Result<(), ClusterError> {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    let mut args = vec![
        "-c",
        "for d; do test -x \"$d\" || { printf '%s' \"$d\"; exit 1; }; done",
        "sh",
    ];
    let names: Vec<String> = ancestors
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    args.extend(names.iter().map(String::as_str));

    match run(run_as.command(Path::new("/bin/sh"), &args)) {
        Ok(_) => Ok(()),
        Err(ClusterError::CommandFailed { output, .. }) if !output.trim().is_empty() => {
            Err(ClusterError::NotTraversable {
                blocked: PathBuf::from(output.trim()),
                target: dir.to_owned(),
            })
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_keeps_its_files_next_to_the_data_dir() {
        let layout = Layout::new(Path::new("/srv/pg/data")).expect("layout");
        assert_eq!(layout.parent, Path::new("/srv/pg"));
        assert_eq!(layout.port_file, Path::new("/srv/pg/data.port"));
        assert_eq!(layout.lock_file, Path::new("/srv/pg/data.lock"));
        assert_eq!(layout.log_file, Path::new("/srv/pg/data.log"));
        assert_eq!(layout.socket_dir_for(5432), Path::new("/srv/pg/data.sock"));
    }

    #[test]
    fn long_or_odd_socket_paths_move_under_tmp() {
        let long = format!("/{}/data", "x".repeat(120));
        let layout = Layout::new(Path::new(&long)).expect("layout");
        assert_eq!(
            layout.socket_dir_for(5555),
            Path::new("/tmp/adscope-pg-sock-5555")
        );

        let spaced = Layout::new(Path::new("/srv/my pg/data")).expect("layout");
        assert_eq!(
            spaced.socket_dir_for(5556),
            Path::new("/tmp/adscope-pg-sock-5556")
        );
    }

    #[test]
    fn relative_data_dirs_become_absolute() {
        let layout = Layout::new(Path::new("rel/data")).expect("layout");
        assert!(layout.data_dir.is_absolute());
        assert!(layout.data_dir.ends_with("rel/data"));
    }
}
