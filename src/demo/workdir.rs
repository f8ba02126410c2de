//! The demo's working folder: a temporary one removed at the end, or a kept one for inspection.

use super::*;

/// The demo's folder: a temporary one (removed on drop) or the `--keep` one.
pub(super) struct WorkDir {
    pub(super) path: PathBuf,
    pub(super) keep: bool,
}

impl WorkDir {
    pub(super) fn prepare(keep: Option<&Path>) -> anyhow::Result<Self> {
        let (path, keep) = match keep {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let dir = std::fs::canonicalize(dir)
                    .with_context(|| format!("cannot resolve {}", dir.display()))?;
                if dir.join(DB_FILE).exists() {
                    anyhow::bail!(
                        "{} already exists; the demo needs a fresh store (remove it or choose another --keep folder)",
                        dir.join(DB_FILE).display()
                    );
                }
                (dir, true)
            }
            None => {
                let dir = std::env::temp_dir()
                    .join(format!("formbridge-demo-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                (dir, false)
            }
        };
        Ok(Self { path, keep })
    }

    pub(super) fn db_path(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }

    pub(super) fn store_url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }

    pub(super) fn store_report(&self, config: &ConfigSource) -> StoreReport {
        let inspect = self.keep.then(|| {
            let config_dir = (config.dir != Path::new("config") && config.dir.exists())
                .then(|| std::fs::canonicalize(&config.dir).unwrap_or_else(|_| config.dir.clone()));
            let mut cmd = format!(
                "FORMBRIDGE__STORE__URL={} formbridge",
                shell_quote(&self.store_url())
            );
            if let Some(dir) = config_dir {
                let _ = write!(
                    cmd,
                    " --config-dir {}",
                    shell_quote(&dir.display().to_string())
                );
            }
            cmd.push_str(" events list");
            cmd
        });
        StoreReport {
            url: self.store_url(),
            kept: self.keep,
            inspect,
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!(
                    "formbridge demo: cannot remove {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub(super) fn shell_quote(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:+=,@".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
