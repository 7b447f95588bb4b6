//! `aimate dashboards generate`: the dashboards/ tree from slo.toml (see aimate-monitoring).

use std::path::Path;
use std::process::ExitCode;

use crate::Failure;

pub fn generate(slo: Option<&Path>, out: &Path, check: bool) -> Result<ExitCode, Failure> {
    let spec = crate::builtin::slo(slo)?;
    let files = aimate_monitoring::generate(&spec)?;
    if check {
        let drifted = aimate_monitoring::drifted(out, &files);
        if drifted.is_empty() {
            eprintln!("{}: up to date ({} files)", out.display(), files.len());
            return Ok(ExitCode::SUCCESS);
        }
        for path in &drifted {
            eprintln!("{}: differs from slo.toml", out.join(path).display());
        }
        eprintln!("run `aimate dashboards generate` and commit the result");
        return Ok(ExitCode::from(1));
    }
    aimate_monitoring::write(out, &files)?;
    for file in &files {
        eprintln!("wrote {}", out.join(&file.path).display());
    }
    Ok(ExitCode::SUCCESS)
}
