//! Generates the prost messages and tonic clients/servers for every `.proto` under the
//! workspace's `proto/` folder, plus a file descriptor set for server reflection.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    // A directory path makes cargo rescan the whole tree, so added files count too.
    println!("cargo:rerun-if-changed={}", proto_root.display());
    println!("cargo:rerun-if-changed=build.rs");

    let mut protos = Vec::new();
    collect_protos(&proto_root, &mut protos)?;
    // Stable order keeps the descriptor set byte-identical between builds.
    protos.sort();
    if protos.is_empty() {
        return Err(format!("no .proto files under {}", proto_root.display()).into());
    }

    // The vendored protoc and its bundled well-known types mean no system protoc is needed.
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let wkt_include = protoc_bin_vendored::include_path()?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Methods a service does not implement yet answer UNIMPLEMENTED.
        .generate_default_stubs(true)
        .file_descriptor_set_path(out_dir.join("adscope_descriptor.bin"))
        .compile_with_config(config, &protos, &[proto_root, wkt_include])?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
