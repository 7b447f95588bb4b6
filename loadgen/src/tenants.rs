//! The tenants a run drives: made and seeded by the run itself (admin token), given as
//! one key, or prepared once beforehand for every segment of a distributed run
//! (`aimate load prepare` → a keys file a Kubernetes Secret can hold).
//!
//! ```text
//! admin token ─ create N ─ seed each ─┐
//! one API key ─ seed it (segment 0    ├─▶ keys + invoice ids to read ─▶ the run
//!               only; others wait)    │
//! keys file   ─ check each ───────────┘   (prepared: seeded already)
//! ```
//!
//! Seeding is "bring the tenant up to N invoices and M jobs", which is idempotent for
//! one writer but not for N segments racing on one fresh tenant (each would see it empty
//! and add the whole seed), so within a distributed run only one process ever seeds.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::api::{Api, ApiError, READ_IDS};
use crate::plan::LoadPlan;
use crate::target_limit::AdvertisedLimit;

/// How many tenants a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenants {
    /// This many (1: the key given, or one made with the admin token).
    Count(usize),
    /// As many as keep each tenant under 80 % of the target's advertised sustained
    /// per-key rate at the fastest stage (1 when the target advertises none).
    Auto,
}

impl Tenants {
    /// More than the one tenant a single API key is: the generator must create them.
    pub fn needs_admin(self) -> bool {
        !matches!(self, Self::Count(0 | 1))
    }
}

impl std::fmt::Display for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

/// How the generator authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    ApiKey(String),
    /// Creates tenants of its own through the admin endpoint.
    AdminToken(String),
    /// Tenants made and seeded beforehand (`aimate load prepare`): used as they are.
    Prepared(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("--tenants {0} needs an admin token: the generator creates its tenants")]
    NeedsAdmin(String),
    #[error(
        "the tenant has {invoices} of {want_invoices} invoices and {jobs} of {want_jobs} jobs after waiting {waited:.0} s for segment 0 to seed it: is segment 0 running? (or seed once with `aimate load prepare`)"
    )]
    NotSeeded {
        invoices: u64,
        jobs: u64,
        want_invoices: u64,
        want_jobs: u64,
        waited: f64,
    },
    #[error("keys file {path}: {reason}")]
    KeysFile { path: String, reason: String },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The seed every tenant gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed {
    pub invoices: u64,
    pub jobs: u64,
}

/// What seeding a run's tenants decided.
#[derive(Debug)]
pub struct Prepared {
    pub keys: Vec<String>,
    /// What the target advertises of its per-key limit (from the first key's answer).
    pub limit: Option<AdvertisedLimit>,
    /// Each tenant's seed: the whole seed, or with `auto` the seed split between them.
    pub seed_per_tenant: Seed,
}

/// Creates the tenants with the admin token (`count`, or with `auto` as many as the
/// target's advertised limit needs at the plan's fastest stage) and seeds each.
pub async fn create_and_seed(
    api: &Api,
    admin_token: &str,
    tenants: Tenants,
    plan: &LoadPlan,
    seed: Seed,
) -> Result<Prepared, TenantError> {
    let first = api
        .create_tenant(admin_token, "aimate load generator 1")
        .await?;
    let limit = api.advertised_limit(&first).await?;
    let count = match tenants {
        Tenants::Count(n) => n.max(1),
        Tenants::Auto => {
            let fastest = plan
                .stages
                .iter()
                .map(|s| s.rate_per_second)
                .fold(0.0, f64::max);
            crate::target_limit::tenants_for(fastest, limit.as_ref())
        }
    };
    let mut keys = Vec::with_capacity(count);
    keys.push(first);
    for n in 2..=count {
        let name = format!("aimate load generator {n}/{count}");
        keys.push(api.create_tenant(admin_token, &name).await?);
    }
    let seed_per_tenant = per_tenant(seed, tenants, keys.len());
    for key in &keys {
        api.seed(key, seed_per_tenant.invoices, seed_per_tenant.jobs)
            .await?;
    }
    Ok(Prepared {
        keys,
        limit,
        seed_per_tenant,
    })
}

/// `auto` spreads one tenant's workload over the keys the target's limit calls for: the
/// same data and the same records read, split between them, so only the keys change. A
/// count given by the user gives each tenant the whole seed, as a SaaS of many
/// businesses of that size would have.
pub fn per_tenant(seed: Seed, tenants: Tenants, keys: usize) -> Seed {
    let share = match tenants {
        Tenants::Auto => keys.max(1) as u64,
        Tenants::Count(_) => 1,
    };
    Seed {
        invoices: seed.invoices.div_ceil(share),
        jobs: seed.jobs.div_ceil(share),
    }
}

/// Invoice ids each tenant reads during the run: with `share` tenants splitting one
/// workload, each reads its part.
pub fn read_ids_per_tenant(share: u64) -> usize {
    usize::try_from(READ_IDS.div_ceil(share.max(1))).unwrap_or(usize::MAX)
}

/// How often a segment looks whether segment 0 has seeded the shared tenant yet.
const SEED_POLL: Duration = Duration::from_millis(500);

/// One key given to a segment of a distributed run: segment 0 seeds it, the others wait
/// (until `deadline`) for the tenant to hold the seed.
pub async fn seed_once(
    api: &Api,
    key: &str,
    seed: Seed,
    seeder: bool,
    deadline: SystemTime,
) -> Result<(), TenantError> {
    if seeder {
        api.seed(key, seed.invoices, seed.jobs).await?;
        return Ok(());
    }
    let began = SystemTime::now();
    loop {
        let (invoices, jobs) = api.seeded(key).await?;
        if invoices >= seed.invoices && jobs >= seed.jobs {
            return Ok(());
        }
        if SystemTime::now() + SEED_POLL >= deadline {
            return Err(TenantError::NotSeeded {
                invoices,
                jobs,
                want_invoices: seed.invoices,
                want_jobs: seed.jobs,
                waited: began.elapsed().unwrap_or_default().as_secs_f64(),
            });
        }
        tokio::time::sleep(SEED_POLL).await;
    }
}

/// The first line of a keys file: what it is, so a stray file is refused.
const KEYS_HEADER: &str = "# aimate load prepare:";

/// Writes the keys, one per line after a comment saying what they are, readable by the
/// owner only (they are the tenants' secrets). `kubectl create secret generic
/// aimate-load-keys --from-file=keys=FILE` takes it as it is.
pub fn write_keys(path: &Path, target: &str, prepared: &Prepared) -> std::io::Result<()> {
    use std::io::Write;
    let mut text = format!(
        "{KEYS_HEADER} {} tenant(s) on {target}, seeded with {} invoices and {} jobs each\n",
        prepared.keys.len(),
        prepared.seed_per_tenant.invoices,
        prepared.seed_per_tenant.jobs
    );
    for key in &prepared.keys {
        text.push_str(key);
        text.push('\n');
    }
    let temp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Reads a keys file written by [`write_keys`]: its keys, in order, each once.
pub fn read_keys(path: &Path) -> Result<Vec<String>, TenantError> {
    let failed = |reason: String| TenantError::KeysFile {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    parse_keys(&text).map_err(failed)
}

fn parse_keys(text: &str) -> Result<Vec<String>, String> {
    if !text.starts_with(KEYS_HEADER) {
        return Err(format!(
            "not written by `aimate load prepare` (its first line starts `{KEYS_HEADER}`)"
        ));
    }
    let mut keys: Vec<String> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("line {} is not one API key", number + 1));
        }
        if keys.iter().any(|k| k == line) {
            return Err(format!("line {} repeats a key", number + 1));
        }
        keys.push(line.to_owned());
    }
    if keys.is_empty() {
        return Err("it holds no keys".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(keys: &[&str]) -> Prepared {
        Prepared {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            limit: None,
            seed_per_tenant: Seed {
                invoices: 500,
                jobs: 100,
            },
        }
    }

    #[test]
    fn a_keys_file_reads_back_what_was_written_and_only_its_owner_can_read_it() {
        let dir = std::env::temp_dir().join(format!("aimate-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        write_keys(
            &path,
            "http://127.0.0.1:8080",
            &prepared(&["k1", "k2", "k3"]),
        )
        .unwrap();
        assert_eq!(read_keys(&path).unwrap(), ["k1", "k2", "k3"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_keys_file_that_is_not_one_is_refused_saying_why() {
        assert!(
            parse_keys("k1\nk2\n")
                .unwrap_err()
                .contains("not written by")
        );
        let header = format!("{KEYS_HEADER} 2 tenant(s)\n");
        assert!(parse_keys(&header).unwrap_err().contains("no keys"));
        assert!(
            parse_keys(&format!("{header}k1\nk1\n"))
                .unwrap_err()
                .contains("line 3 repeats")
        );
        assert!(
            parse_keys(&format!("{header}k1 k2\n"))
                .unwrap_err()
                .contains("line 2 is not one API key")
        );
        assert_eq!(
            parse_keys(&format!("{header}\n  k1  \n# note\nk2\n")).unwrap(),
            ["k1", "k2"]
        );
    }

    #[test]
    fn auto_splits_the_seed_and_a_count_gives_each_tenant_all_of_it() {
        let seed = Seed {
            invoices: 500,
            jobs: 100,
        };
        assert_eq!(per_tenant(seed, Tenants::Count(4), 4), seed);
        assert_eq!(
            per_tenant(seed, Tenants::Auto, 3),
            Seed {
                invoices: 167,
                jobs: 34
            }
        );
        assert_eq!(read_ids_per_tenant(1), 200);
        assert_eq!(read_ids_per_tenant(3), 67);
    }
}
