//! TCP ports: picking a free one, remembering it next to the data, probing a server.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::ClusterError;

/// How long [`server_reachable`] waits for a TCP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether something accepts TCP connections on `host:port`.
pub fn server_reachable(host: &str, port: u16) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok())
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub(crate) fn pick_free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| ClusterError::io("could not bind a probe socket on", "127.0.0.1:0", e))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| ClusterError::io("could not read the address of", "127.0.0.1:0", e))?;
    Ok(addr.port())
}

/// Whether `port` on 127.0.0.1 can be bound by a new server.
pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The port recorded in `path`, or `None` when there is no such file.
pub(crate) fn read_port_file(path: &Path) -> Result<Option<u16>, ClusterError> {
    let content = match std::fs::read_to_string(path) {
        Ok(content) => content,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClusterError::io("could not read", path, e)),
    };
    match content.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(Some(port)),
        _ => Err(ClusterError::BadPortFile {
            path: path.to_owned(),
            content,
        }),
    }
}

/// Records `port` in `path`, replacing the file whole so a reader never sees half of it.
pub(crate) fn write_port_file(path: &Path, port: u16) -> Result<(), ClusterError> {
    let tmp = path.with_extension("port.tmp");
    std::fs::write(&tmp, format!("{port}\n"))
        .map_err(|e| ClusterError::io("could not write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ClusterError::io("could not replace", path, e))
}

/// The port a running server wrote to line 4 of its `postmaster.pid`.
pub(crate) fn port_from_postmaster_pid(content: &str) -> Option<u16> {
    content.lines().nth(3)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_file(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("adscope-pgcluster-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir.join(name)
    }

    #[test]
    fn port_file_round_trips() {
        let path = scratch_file("data.port");
        assert_eq!(read_port_file(&path).expect("read missing"), None);
        write_port_file(&path, 54_321).expect("write");
        assert_eq!(read_port_file(&path).expect("read"), Some(54_321));
        write_port_file(&path, 5433).expect("overwrite");
        assert_eq!(read_port_file(&path).expect("read again"), Some(5433));
        std::fs::remove_dir_all(path.parent().expect("parent")).ok();
    }

    #[test]
    fn garbage_port_file_is_an_error_naming_the_file() {
        let path = scratch_file("data.port");
        std::fs::write(&path, "not a port").expect("write");
        let err = read_port_file(&path).expect_err("garbage must not parse");
        assert!(err.to_string().contains("data.port"), "{err}");
        std::fs::remove_dir_all(path.parent().expect("parent")).ok();
    }

    #[test]
    fn postmaster_pid_port_is_line_four() {
        let pid =
            "12345\n/tmp/data\n1700000000\n54999\n/tmp/sock\n127.0.0.1\n  1234  5678\nready\n";
        assert_eq!(port_from_postmaster_pid(pid), Some(54_999));
        assert_eq!(port_from_postmaster_pid("12345\n"), None);
    }

    #[test]
    fn a_listening_port_is_reachable_and_not_free() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(server_reachable("127.0.0.1", port));
        assert!(!port_is_free(port));
        drop(listener);
        assert!(!server_reachable("127.0.0.1", port));
    }

    #[test]
    fn picked_port_is_free() {
        let port = pick_free_port().expect("pick");
        assert_ne!(port, 0);
        assert!(port_is_free(port));
    }
}
