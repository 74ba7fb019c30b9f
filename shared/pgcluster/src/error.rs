//! The one error type of this crate; every message says what to do next.

use std::path::PathBuf;

/// Why a throwaway PostgreSQL cluster could not be found, installed or started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No directory with `initdb`, `pg_ctl` and `postgres` exists and we may not install one.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in \
         /usr/lib/postgresql/*/bin; install them with: {install_command}"
    )]
    BinariesMissing {
        /// The command that installs them on this machine.
        install_command: String,
    },

    /// A helper program could not be started at all.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// The program and its arguments.
        program: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A helper program ran and failed.
    #[error("`{program}` failed ({status}): {output}")]
    CommandFailed {
        /// The program and its arguments.
        program: String,
        /// Its exit status.
        status: String,
        /// The tail of what it printed.
        output: String,
    },

    /// The package manager ran but the binaries are still missing.
    #[error(
        "`apt-get install -y postgresql` succeeded but no initdb/pg_ctl/postgres appeared on PATH \
         or in /usr/lib/postgresql/*/bin; check the package with `dpkg -L postgresql-common`"
    )]
    StillMissingAfterInstall,

    /// Running as root, but there is no unprivileged account to run PostgreSQL as.
    #[error(
        "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` OS \
         user to run it as; install Debian's `postgresql` package (it creates the user) or run \
         `useradd --system --home /var/lib/postgresql postgres`"
    )]
    NoPostgresUser,

    /// The `postgres` OS user cannot reach the directory that will hold the cluster.
    #[error(
        "the `postgres` OS user cannot traverse {blocked} to reach {target}; run \
         `chmod o+x {blocked}` or put the cluster somewhere it can reach (e.g. under /tmp)"
    )]
    NotTraversable {
        /// The first directory on the way that it cannot enter.
        blocked: PathBuf,
        /// The directory it must reach.
        target: PathBuf,
    },

    /// The data directory holds something other than an empty dir or a cluster.
    #[error(
        "{0} exists but is neither empty nor a PostgreSQL data directory (no PG_VERSION); \
         remove it or choose another directory"
    )]
    NotADataDir(PathBuf),

    /// The data directory was made by another major version of PostgreSQL.
    #[error(
        "{data_dir} holds a PostgreSQL {found} cluster but the server binaries are version \
         {expected}; it is a throwaway cluster: remove {data_dir} and it is made anew"
    )]
    VersionMismatch {
        /// The data directory.
        data_dir: PathBuf,
        /// The major version in its PG_VERSION file.
        found: String,
        /// The major version of the binaries in use.
        expected: String,
    },

    /// The server did not come up; the log says why.
    #[error("PostgreSQL in {data_dir} did not start; last lines of {log}:\n{tail}")]
    StartFailed {
        /// The data directory.
        data_dir: PathBuf,
        /// The server log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// A file next to the data directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "could not create".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The port file holds something that is not a port.
    #[error("{path} does not hold a TCP port number ({content:?}); remove it")]
    BadPortFile {
        /// The port file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
}

impl ClusterError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
