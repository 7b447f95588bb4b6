//! `aimate tenant create NAME`: writes straight to the database, so it works before the
//! server runs and without an admin token.

use std::process::ExitCode;

use aimate_server::open_database;
use aimate_server::tenants::{NewTenant, insert_tenant};

use crate::cli::DatabaseArgs;

pub fn create(name: &str, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
    let config = database.server_config();
    let created = super::runtime()?.block_on(async {
        let db = open_database(&config).await?;
        let created = insert_tenant(
            &db,
            NewTenant {
                name: name.to_owned(),
            },
        )
        .await;
        db.pool.close().await;
        anyhow::Ok(created?)
    })?;
    eprintln!(
        "created tenant {} ({}); its API key is shown only now",
        created.id, created.name
    );
    println!("{}", created.api_key);
    Ok(ExitCode::SUCCESS)
}
