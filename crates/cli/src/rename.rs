//! `rename` / `container rename`: a container's new name (its DNS names follow).

use anyhow::{Result, bail};
use clap::Args;
use hyper::Method;

use crate::client::{Client, query, seg};

/// Arguments of `rename`.
#[derive(Debug, Args)]
#[command(after_help = "Example: netloom rename web web_old")]
pub struct RenameArgs {
    /// The container's current name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Its new name
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// Renames a container.
pub async fn rename(client: &Client, a: RenameArgs) -> Result<i32> {
    if a.container.trim().is_empty() || a.new_name.trim().is_empty() {
        bail!("Error: Neither old nor new names may be empty");
    }
    client
        .call(
            Method::POST,
            &format!(
                "/containers/{}/rename{}",
                seg(&a.container),
                query(&[("name", a.new_name.clone())])
            ),
            None,
        )
        .await?;
    Ok(0)
}
