//! `aimate dashboards generate`: the dashboards/ tree (and, with --deploy, the
//! deployments' monitoring files) from slo.toml (see aimate-monitoring).

use std::path::Path;
use std::process::ExitCode;

use aimate_monitoring::GeneratedFile;

use crate::Failure;

pub fn generate(
    slo: Option<&Path>,
    out: &Path,
    deploy: Option<&Path>,
    check: bool,
) -> Result<ExitCode, Failure> {
    let spec = crate::builtin::slo(slo)?;
    let mut trees = vec![(out, aimate_monitoring::generate(&spec)?)];
    if let Some(deploy) = deploy {
        trees.push((deploy, aimate_monitoring::generate_deploy(&spec)?));
    }
    if check {
        return Ok(check_trees(&trees));
    }
    for (dir, files) in &trees {
        aimate_monitoring::write(dir, files)?;
        for file in files {
            eprintln!("wrote {}", dir.join(&file.path).display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 when every tree is up to date, else 1 naming each file that differs.
fn check_trees(trees: &[(&Path, Vec<GeneratedFile>)]) -> ExitCode {
    let mut clean = true;
    for (dir, files) in trees {
        let drifted = aimate_monitoring::drifted(dir, files);
        if drifted.is_empty() {
            eprintln!("{}: up to date ({} files)", dir.display(), files.len());
        }
        for path in &drifted {
            eprintln!("{}: differs from slo.toml", dir.join(path).display());
            clean = false;
        }
    }
    if clean {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "run `aimate dashboards generate` (with the same --out/--deploy) and commit the result"
    );
    ExitCode::from(1)
}
