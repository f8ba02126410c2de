//! `formbridge serve` processes a test kills and restarts: one command to start each (config
//! folder and environment), the live ones' base URLs for senders to read, SIGKILL.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};

use crate::common::start_process;

/// How to start one `formbridge serve`: its config folder and `FORMBRIDGE__…` environment.
#[derive(Clone)]
pub struct ServeCommand {
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
}

impl ServeCommand {
    /// Starts it and returns the process and its base URL (see [`start_process`]).
    pub fn start(&self) -> (Child, String) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        start_process(&self.config, &env)
    }

    /// Sets `key` to `value` in its environment (replacing an earlier value).
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }
}

/// SIGKILLs `child` and reaps it.
pub fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The base URLs of the fleet's processes, `None` while one is down: what senders read.
pub type Live = Arc<Mutex<Vec<Option<String>>>>;

/// `n` servers started from one command; any of them can be killed and restarted.
pub struct Fleet {
    command: ServeCommand,
    children: Vec<Option<Child>>,
    live: Live,
}

impl Fleet {
    /// Starts `n` servers.
    pub fn start(command: ServeCommand, n: usize) -> Self {
        let mut fleet = Self {
            command,
            children: (0..n).map(|_| None).collect(),
            live: Arc::new(Mutex::new(vec![None; n])),
        };
        for i in 0..n {
            fleet.restart(i);
        }
        fleet
    }

    /// The live servers' URLs, shared with senders.
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    /// How many servers the fleet runs.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// A live server's base URL.
    pub fn any_base(&self) -> Option<String> {
        self.live.lock().unwrap().iter().flatten().next().cloned()
    }

    /// SIGKILLs server `i` (taken out of the live list first, so no new request goes to it).
    pub fn kill(&mut self, i: usize) {
        self.live.lock().unwrap()[i] = None;
        if let Some(mut child) = self.children[i].take() {
            kill(&mut child);
        }
    }

    /// Starts server `i` (again) and puts it in the live list once it listens.
    pub fn restart(&mut self, i: usize) {
        let (child, base) = self.command.start();
        self.children[i] = Some(child);
        self.live.lock().unwrap()[i] = Some(base);
    }

    /// SIGKILLs every server.
    pub fn kill_all(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
