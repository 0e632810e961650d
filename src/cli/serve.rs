//! `wharf serve`: the flags of the service and the configuration they make.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file [default: config/wharf.toml when it exists, else built-in defaults].
    #[arg(long, env = "WHARF_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (overrides server.bind).
    #[arg(long)]
    pub bind: Option<String>,
    /// Database URL, sqlite://path or postgres://… (overrides database.url).
    #[arg(long)]
    pub database: Option<String>,
}

impl ServeArgs {
    /// The configuration these flags, the config file and the environment describe.
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        let default_path = PathBuf::from("config/wharf.toml");
        let path = self.config.clone().or_else(|| default_path.exists().then_some(default_path));
        let mut config = Config::load(path.as_deref(), std::env::vars())?;
        if let Some(bind) = &self.bind {
            config.server.bind = bind.clone();
        }
        if let Some(database) = &self.database {
            config.database.url = database.clone();
        }
        config.validate()?;
        Ok(config)
    }
}
