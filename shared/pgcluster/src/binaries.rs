//! Finding the PostgreSQL server programs, and installing Debian's package when allowed.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ClusterError;
use crate::process::{run, running_as_root};

/// The programs a bin dir must hold for us to provision a cluster.
const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Where Debian's `postgresql-<major>` packages put their server programs.
const DEBIAN_LIB_ROOT: &str = "/usr/lib/postgresql";

/// What to tell a user who is not root and has no server binaries.
const INSTALL_COMMAND: &str = "sudo apt-get install -y postgresql";

/// A directory holding `initdb`, `pg_ctl` and `postgres`: PATH first, then the
/// highest version under `/usr/lib/postgresql/*/bin`.
pub fn find_server_binaries() -> Result<PathBuf, ClusterError> {
    locate(
        std::env::var_os("PATH").as_deref(),
        Path::new(DEBIAN_LIB_ROOT),
    )
}

// Apart from the environment so that tests can point it at empty directories.
fn locate(path_var: Option<&OsStr>, lib_root: &Path) -> Result<PathBuf, ClusterError> {
    find_in(path_var, lib_root).ok_or_else(binaries_missing)
}

fn binaries_missing() -> ClusterError {
    ClusterError::BinariesMissing {
        install_command: INSTALL_COMMAND.to_owned(),
    }
}

/// Like [`find_server_binaries`], but installs Debian's `postgresql` package when
/// the binaries are missing and this process runs as root.
pub fn ensure_server_binaries() -> Result<PathBuf, ClusterError> {
    if let Ok(dir) = find_server_binaries() {
        return Ok(dir);
    }
    if !running_as_root() {
        return Err(binaries_missing());
    }

    // Several test processes may get here at once; apt holds its own lock and would
    // fail the losers, so they queue here and the later ones find the binaries.
    let lock_path = std::env::temp_dir().join("adscope-postgresql-install.lock");
    let lock = File::create(&lock_path)
        .map_err(|e| ClusterError::io("could not create", &lock_path, e))?;
    lock.lock()
        .map_err(|e| ClusterError::io("could not lock", &lock_path, e))?;
    if let Ok(dir) = find_server_binaries() {
        return Ok(dir);
    }

    tracing::info!("PostgreSQL server binaries missing; installing Debian's postgresql package");
    let mut update = Command::new("apt-get");
    update
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "postgresql"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(install)?;
    tracing::info!("installed Debian's postgresql package");

    find_server_binaries().map_err(|_| ClusterError::StillMissingAfterInstall)
}

/// The first PATH entry holding every server program, else the highest-versioned
/// `<lib_root>/<version>/bin` that does.
fn find_in(path_var: Option<&OsStr>, lib_root: &Path) -> Option<PathBuf> {
    if let Some(path_var) = path_var
        && let Some(dir) = std::env::split_paths(path_var).find(|dir| holds_server_programs(dir))
    {
        return Some(dir);
    }

    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(lib_root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(&entry.file_name().to_string_lossy())?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| holds_server_programs(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else is not a version directory.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn holds_server_programs(dir: &Path) -> bool {
    SERVER_PROGRAMS
        .iter()
        .all(|program| is_executable(&dir.join(program)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The major version of the server programs in `bin_dir`, e.g. `"15"`.
pub(crate) fn major_version(bin_dir: &Path) -> Result<String, ClusterError> {
    let mut cmd = Command::new(bin_dir.join("postgres"));
    cmd.arg("--version");
    let out = run(cmd)?;
    Ok(parse_major_version(&out).unwrap_or_default())
}

/// `"postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"` → `"15"`.
fn parse_major_version(version_output: &str) -> Option<String> {
    let number = version_output
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = number.split('.');
    let major = parts.next()?;
    // Before PostgreSQL 10 the major version had two parts (9.6).
    if major.parse::<u32>().ok()? < 10 {
        return Some(format!("{major}.{}", parts.next()?));
    }
    Some(major.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("adscope-pgcluster-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    fn fake_bin_dir(dir: &Path, programs: &[&str]) {
        std::fs::create_dir_all(dir).expect("create fake bin dir");
        for program in programs {
            let path = dir.join(program);
            std::fs::write(&path, "#!/bin/sh\n").expect("write fake program");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("make fake program executable");
        }
    }

    #[test]
    fn lib_root_discovery_picks_the_highest_version() {
        let root = scratch_dir();
        for version in ["9.6", "13", "16", "15"] {
            fake_bin_dir(&root.join(version).join("bin"), &SERVER_PROGRAMS);
        }
        // A newer version without a complete set of programs must be passed over.
        fake_bin_dir(&root.join("17").join("bin"), &["initdb"]);
        std::fs::create_dir_all(root.join("not-a-version/bin")).expect("create junk dir");

        let found = find_in(None, &root);
        assert_eq!(found, Some(root.join("16").join("bin")));
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn path_wins_over_lib_root() {
        let root = scratch_dir();
        fake_bin_dir(&root.join("lib/16/bin"), &SERVER_PROGRAMS);
        fake_bin_dir(&root.join("partial"), &["initdb", "pg_ctl"]);
        fake_bin_dir(&root.join("full"), &SERVER_PROGRAMS);
        let path_var =
            std::env::join_paths([root.join("partial"), root.join("full")]).expect("join paths");

        let found = find_in(Some(&path_var), &root.join("lib"));
        assert_eq!(found, Some(root.join("full")));
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn nothing_found_when_no_dir_holds_all_programs() {
        let root = scratch_dir();
        fake_bin_dir(&root.join("lib/16/bin"), &["initdb", "postgres"]);
        let path_var = std::env::join_paths([root.join("nowhere")]).expect("join paths");
        assert_eq!(find_in(Some(&path_var), &root.join("lib")), None);
        assert_eq!(find_in(None, &root.join("missing-root")), None);
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn non_executable_files_do_not_count() {
        let root = scratch_dir();
        let bin = root.join("lib/16/bin");
        fake_bin_dir(&bin, &SERVER_PROGRAMS);
        std::fs::set_permissions(bin.join("postgres"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        assert_eq!(find_in(None, &root.join("lib")), None);
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn major_version_is_read_from_version_output() {
        let out = "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n";
        assert_eq!(parse_major_version(out).as_deref(), Some("15"));
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 9.6.24").as_deref(),
            Some("9.6")
        );
        assert_eq!(parse_major_version("garbage"), None);
    }

    #[test]
    fn missing_binaries_error_names_the_install_command() {
        let root = scratch_dir();
        let path_var = std::env::join_paths([root.join("nowhere")]).expect("join paths");
        let message = locate(Some(&path_var), &root.join("missing-root"))
            .expect_err("no binaries there")
            .to_string();
        assert!(
            message.ends_with("install them with: sudo apt-get install -y postgresql"),
            "{message}"
        );
        std::fs::remove_dir_all(root).ok();
    }
}
