//! Running helper programs, as the `postgres` OS user when we are root.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::ClusterError;

/// How many trailing lines of a failed command's output go into its error.
const OUTPUT_TAIL_LINES: usize = 20;

/// Whether this process runs with effective uid 0.
pub(crate) fn running_as_root() -> bool {
    // The second field of `Uid:` is the effective uid; reading it needs no unsafe libc call.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(euid) = effective_uid_from_status(&status)
    {
        return euid == 0;
    }
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn effective_uid_from_status(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The uid and gid of an OS user, or `None` when it does not exist.
pub(crate) fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .args([flag, user])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Who runs the PostgreSQL programs: ourselves, or another user through `runuser`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunAs {
    Current,
    User(String),
}

impl RunAs {
    /// A command for `program` with `args`, wrapped in `runuser` when needed.
    pub(crate) fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = match self {
            RunAs::Current => Command::new(program),
            RunAs::User(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
        };
        cmd.args(args);

        // The other user may not be allowed into our working directory, and some
        // PostgreSQL tools complain when they cannot return to it.
        cmd.current_dir("/");
        cmd.stdin(Stdio::null());
        cmd
    }
}

/// Runs `cmd` to completion, turning a non-zero exit into an error with its output's tail.
pub(crate) fn run(mut cmd: Command) -> Result<String, ClusterError> {
    let program = describe(&cmd);
    tracing::debug!(command = %program, "running");
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ClusterError::Spawn {
            program: program.clone(),
            source,
        })?;

    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(ClusterError::CommandFailed {
            program,
            status: out.status.to_string(),
            output: tail(&text),
        })
    }
}

/// Runs `cmd` and reports only whether it exited with status 0.
pub(crate) fn succeeds(mut cmd: Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The last few lines of `text`.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("\n")
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid_from_status(status), Some(0));
        assert_eq!(effective_uid_from_status("Name:\tx\n"), None);
    }

    #[test]
    fn tail_keeps_only_the_last_lines() {
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let kept = tail(&text);
        assert_eq!(kept.lines().count(), OUTPUT_TAIL_LINES);
        assert!(kept.ends_with("line 49"));
    }

    #[test]
    fn runuser_wraps_the_program_for_another_user() {
        let cmd = RunAs::User("postgres".into()).command(Path::new("/bin/true"), &["-x"]);
        assert_eq!(describe(&cmd), "runuser -u postgres -- /bin/true -x");
        let cmd = RunAs::Current.command(Path::new("/bin/true"), &["-x"]);
        assert_eq!(describe(&cmd), "/bin/true -x");
    }
}
