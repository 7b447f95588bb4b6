//! `aimate tenant create NAME | rotate-key ID | revoke-key ID`: straight to the
//! database, so they work before the server runs and without an admin token.

use std::process::ExitCode;

use aimate_server::open_database;
use aimate_server::tenants::{
    NewTenant, insert_tenant, revoke_key as revoke, rotate_key as rotate,
};
use anyhow::anyhow;

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

pub fn rotate_key(id: i64, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
    let config = database.server_config();
    let rotated = super::runtime()?.block_on(async {
        let db = open_database(&config).await?;
        let rotated = rotate(&db, id).await;
        db.pool.close().await;
        anyhow::Ok(rotated?)
    })?;
    let (rotated, _) = rotated.ok_or_else(|| anyhow!("no tenant with id {id}"))?;
    eprintln!(
        "new API key for tenant {} ({}); the old key no longer works (running servers: \
         within 60 s); the new one is shown only now",
        rotated.id, rotated.name
    );
    println!("{}", rotated.api_key);
    Ok(ExitCode::SUCCESS)
}

pub fn revoke_key(id: i64, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
    let config = database.server_config();
    let revoked = super::runtime()?.block_on(async {
        let db = open_database(&config).await?;
        let revoked = revoke(&db, id).await;
        db.pool.close().await;
        anyhow::Ok(revoked?)
    })?;
    revoked.ok_or_else(|| anyhow!("no tenant with id {id}"))?;
    eprintln!(
        "revoked the API key of tenant {id} (running servers: within 60 s); \
         `aimate tenant rotate-key {id}` issues a new one"
    );
    Ok(ExitCode::SUCCESS)
}
