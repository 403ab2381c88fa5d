//! `meshctl acl`: the Redis ACL file of the mesh (`common::acl`), from the passwords in the
//! environment. Needs no connection: compose runs it once before Redis starts.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::Context as _;
use common::{
    Keys,
    acl::{OPERATOR, acl_file},
    events::wiring::SERVICES,
};

#[derive(Debug, clap::Args)]
pub struct AclArgs {
    /// Write the file here (replacing it) instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The environment variable holding the Redis password of `who` (a service or `operator`).
pub fn password_var(who: &str) -> String {
    format!("MESH_REDIS_PASSWORD_{}", who.to_ascii_uppercase())
}

pub fn acl(prefix: &str, args: &AclArgs) -> anyhow::Result<()> {
    let passwords: BTreeMap<String, String> = SERVICES
        .iter()
        .chain(&[OPERATOR])
        .filter_map(|who| {
            std::env::var(password_var(who))
                .ok()
                .map(|pw| ((*who).to_owned(), pw))
        })
        .collect();
    let file = acl_file(&Keys::new(prefix), &passwords).map_err(|e| {
        let var = match &e {
            common::acl::AclError::Missing(who) | common::acl::AclError::Weak(who) => {
                password_var(who)
            }
        };
        anyhow::anyhow!("{e} (set {var})")
    })?;
    match &args.out {
        Some(path) => {
            // Written beside, then renamed: Redis never reads half a file.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &file).with_context(|| format!("write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
            eprintln!("meshctl: wrote {} (passwords hashed)", path.display());
        }
        None => print!("{file}"),
    }
    Ok(())
}
