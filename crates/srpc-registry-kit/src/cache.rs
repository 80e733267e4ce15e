//! The local cache file (`file=<path>` on the registry URL), as Java Dubbo keeps it
//! (`AbstractRegistry`): each subscription's latest providers, saved so that a consumer
//! started while the registry is unreachable can start from them.
//!
//! The file is Java's: a `.properties` file whose keys are service keys
//! (`group/interface:version`) and whose values are every URL the subscription holds, full
//! strings joined by spaces (an empty list is written as Java writes it, an `empty://` marker
//! per category). Java and srpc consumers can share one file.
//!
//! Where srpc differs from Java, on purpose:
//! - a write replaces the file atomically (a temporary file in the same directory, then a
//!   rename), so a crash mid-write leaves the old file, never half a file;
//! - a write holds an exclusive lock on `<file>.lock` (Java's lock file) and merges into what
//!   the file holds then, so two processes sharing the file keep each other's entries instead
//!   of the last writer erasing the other's;
//! - a file that cannot be read, or holds lines or URLs that do not parse, costs a warning
//!   and those entries, never the registry handle;
//! - only live lists are saved: while a subscription is not connected its (protected) list is
//!   not written back.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use dubbo_url::Url;

use crate::files::{open_regular, read_no_follow, write_atomically};
use fs4::{FileExt, TryLockError};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::layout::query_categories;
use crate::properties::{self, Line};
use crate::retry::RetryPolicy;
use crate::tasks::Tasks;

/// The comment Java writes as the file's first line.
const COMMENT: &str = "Dubbo Registry Cache";
/// How long changes gather before a write (Java waits 500 ms).
const GATHER: Duration = Duration::from_millis(100);

/// One registry handle's view of its cache file.
#[derive(Debug)]
pub(crate) struct CacheFile {
    path: PathBuf,
    state: Mutex<State>,
    /// Wakes the writer task (also when the cache is dropped, to end it).
    dirty: Arc<Notify>,
    /// Where the writer task runs: the registry handle's.
    tasks: Tasks,
}

#[derive(Debug, Default)]
struct State {
    /// Every list known by service key: read from the file at start, then this handle's own.
    lists: HashMap<String, Vec<Url>>,
    /// What this handle has to write: service key → the value, as written.
    unwritten: BTreeMap<String, String>,
    writer_started: bool,
}

impl CacheFile {
    /// Opens the cache at `path`, reading what it holds now. Never fails: a missing file is
    /// an empty cache, an unreadable or damaged one is reported and read as far as it goes.
    pub(crate) fn open(path: PathBuf, tasks: Tasks) -> Arc<CacheFile> {
        let lists = match read_no_follow(&path) {
            Ok(bytes) => read_lists(&path, &bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                info!(file = %path.display(), "no registry cache file yet; it is written once subscriptions have providers");
                HashMap::new()
            }
            Err(error) => {
                warn!(file = %path.display(), %error, "cannot read the registry cache file; starting without it");
                HashMap::new()
            }
        };
        Arc::new(CacheFile {
            path,
            state: Mutex::new(State {
                lists,
                ..State::default()
            }),
            dirty: Arc::new(Notify::new()),
            tasks,
        })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The cached list for `query`'s service key, if the cache has one (possibly empty).
    pub(crate) fn cached(&self, query: &Url) -> Option<Vec<Url>> {
        self.lock().lists.get(&query.service_key()).cloned()
    }

    /// Records `query`'s live list and has it written soon (or now, outside a runtime).
    pub(crate) fn save<'a>(self: &Arc<Self>, query: &Url, urls: impl IntoIterator<Item = &'a Url>) {
        let urls: Vec<Url> = urls.into_iter().cloned().collect();
        let key = query.service_key();
        let value = if urls.is_empty() {
            // Java's marker for "no entries", one per category, so Java reads "none".
            query_categories(query)
                .iter()
                .map(|category| query.to_empty(category).to_full_string())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            // Values are split on white space: a URL with white space in it is written in the
            // encoded form, which both Java and srpc read.
            urls.iter()
                .map(|url| match url.as_full_str() {
                    text if text.contains(char::is_whitespace) => url.to_encoded_string(),
                    text => text.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let start_writer = {
            let mut state = self.lock();
            if state.lists.get(&key) == Some(&urls) && !state.unwritten.contains_key(&key) {
                return;
            }
            state.lists.insert(key.clone(), urls);
            state.unwritten.insert(key, value);
            !std::mem::replace(&mut state.writer_started, true)
        };
        if start_writer {
            match self.tasks.spawn(
                "cache file writer",
                writer(Arc::downgrade(self), self.dirty.clone()),
            ) {
                Ok(_) => {}
                Err(_) => {
                    self.lock().writer_started = false;
                    if let Err(error) = self.flush() {
                        warn!(file = %self.path.display(), %error, "cannot write the registry cache file");
                    }
                    return;
                }
            }
        }
        self.dirty.notify_one();
    }

    /// Writes what is unwritten, if anything: under the lock file, merged into what the file
    /// holds, through a temporary file and a rename. On failure it stays unwritten.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let ours = {
            let state = self.lock();
            if state.unwritten.is_empty() {
                return Ok(());
            }
            state.unwritten.clone()
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let lock = open_regular(
            &lock_path(&self.path),
            OpenOptions::new().create(true).truncate(false).write(true),
            "lock",
        )?;
        // fs4's, not std's (std's `File::try_lock` is newer than this crate's Rust).
        match FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{} is held: another process is writing the cache file",
                        lock_path(&self.path).display()
                    ),
                ));
            }
            Err(TryLockError::Error(error)) => return Err(error),
        }
        // Under the lock: what the file holds now (other processes' entries), then ours.
        let mut merged: BTreeMap<String, String> = match read_no_follow(&self.path) {
            Ok(bytes) => properties::entries(&bytes).collect(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        merged.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
        let text = properties::write(
            COMMENT,
            &humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            merged.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let written = write_atomically(&self.path, text.as_bytes());
        drop(lock);
        written?;
        // Written: forget what was written, unless it changed meanwhile.
        let mut state = self.lock();
        for (key, value) in &ours {
            if state.unwritten.get(key) == Some(value) {
                state.unwritten.remove(key);
            }
        }
        debug!(file = %self.path.display(), entries = merged.len(), "registry cache file written");
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for CacheFile {
    fn drop(&mut self) {
        // Ends the writer task.
        self.dirty.notify_one();
    }
}

/// Writes the cache whenever it is dirty, after changes have gathered; retries a failed
/// write with backoff. Ends with its cache.
async fn writer(cache: std::sync::Weak<CacheFile>, dirty: Arc<Notify>) {
    let retry = RetryPolicy::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        dirty.notified().await;
        tokio::time::sleep(GATHER).await;
        let mut backoff = retry.backoff();
        loop {
            let Some(cache) = cache.upgrade() else { return };
            let flushing = cache.clone();
            let result = tokio::task::spawn_blocking(move || flushing.flush())
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join.to_string())));
            match result {
                Ok(()) => break,
                Err(error) => {
                    warn!(file = %cache.path.display(), %error, "cannot write the registry cache file; will try again");
                }
            }
            drop(cache);
            backoff.wait().await;
        }
    }
}

/// Reads the lists a cache file holds, skipping (with a warning) what does not parse.
pub(crate) fn read_lists(path: &Path, bytes: &[u8]) -> HashMap<String, Vec<Url>> {
    let mut lists = HashMap::new();
    let mut skipped = 0usize;
    for line in properties::parse(bytes) {
        let (key, value) = match line {
            Line::Entry(key, value) => (key, value),
            Line::Skipped(number, reason) => {
                warn!(file = %path.display(), line = number, %reason, "registry cache file: line skipped");
                skipped += 1;
                continue;
            }
        };
        // Java's rule: a service key starts with a letter or '_'.
        if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            warn!(file = %path.display(), key = %dubbo_url::quote(&key), "registry cache file: not a service key; entry skipped");
            skipped += 1;
            continue;
        }
        let mut urls = Vec::new();
        for text in value.split_whitespace() {
            match Url::parse(text) {
                Ok(url) if url.is_empty_protocol() => {}
                Ok(url) => urls.push(url),
                Err(error) => {
                    warn!(file = %path.display(), key = %dubbo_url::quote(&key), url = %dubbo_url::quote(text), %error, "registry cache file: URL skipped");
                    skipped += 1;
                }
            }
        }
        lists.insert(key, urls);
    }
    info!(file = %path.display(), services = lists.len(), skipped, "registry cache file read");
    lists
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn query() -> Url {
        url("consumer://127.0.0.1/a.B?interface=a.B&group=g&version=1.0&category=providers")
    }

    #[test]
    fn a_saved_list_is_read_back_by_the_next_process() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let path = dir.join("cache.properties");
        let first = CacheFile::open(path.clone(), Tasks::new("test"));
        let providers = [
            url("dubbo://10.0.0.1:20880/a.B?interface=a.B&group=g&version=1.0"),
            url("dubbo://10.0.0.2:20880/a.B?interface=a.B&group=g&version=1.0&note=two words"),
        ];
        first.save(&query(), &providers);
        assert!(
            first.lock().unwritten.is_empty(),
            "written at once outside a runtime"
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#Dubbo Registry Cache\n"), "{text}");
        assert!(
            text.contains("g/a.B\\:1.0=dubbo\\://10.0.0.1\\:20880/"),
            "{text}"
        );
        let second = CacheFile::open(path.clone(), Tasks::new("test"));
        assert_eq!(second.cached(&query()), Some(providers.to_vec()));
        // An empty list is Java's empty marker, read back as an empty list.
        second.save(&query(), &[]);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("=empty\\://"), "{text}");
        assert_eq!(
            CacheFile::open(path.clone(), Tasks::new("test")).cached(&query()),
            Some(vec![])
        );
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn writers_keep_each_others_entries() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let path = dir.join("shared.cache");
        let a = CacheFile::open(path.clone(), Tasks::new("test"));
        let b = CacheFile::open(path.clone(), Tasks::new("test"));
        let other = url("consumer://127.0.0.1/c.D?interface=c.D&category=providers");
        a.save(
            &query(),
            &[url(
                "dubbo://10.0.0.1:1/a.B?interface=a.B&group=g&version=1.0",
            )],
        );
        b.save(&other, &[url("dubbo://10.0.0.9:1/c.D?interface=c.D")]);
        let read = CacheFile::open(path, Tasks::new("test"));
        assert_eq!(read.cached(&query()).map(|l| l.len()), Some(1));
        assert_eq!(read.cached(&other).map(|l| l.len()), Some(1));
    }

    #[test]
    fn a_held_lock_postpones_the_write_and_loses_nothing() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let path = dir.join("locked.cache");
        let cache = CacheFile::open(path.clone(), Tasks::new("test"));
        let held = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(&path))
            .unwrap();
        FileExt::try_lock(&held).unwrap();
        cache.save(
            &query(),
            &[url(
                "dubbo://10.0.0.1:1/a.B?interface=a.B&group=g&version=1.0",
            )],
        );
        assert!(
            !path.exists(),
            "nothing written while another holds the lock"
        );
        assert_eq!(cache.lock().unwritten.len(), 1, "still to write");
        let error = cache.flush().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        cache.flush().unwrap();
        assert_eq!(
            CacheFile::open(path, Tasks::new("test"))
                .cached(&query())
                .map(|l| l.len()),
            Some(1)
        );
    }

    #[test]
    fn damaged_files_cost_their_bad_entries_only() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let good = "dubbo\\://10.0.0.1\\:1/a.B?interface\\=a.B";
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("binary", vec![0xff, 0x00, 0x1b, 0x80, b'\n', 0xfe]),
            (
                "truncated escape",
                format!("g/a.B\\:1.0={good}\nx=\\u00").into_bytes(),
            ),
            (
                "truncated URL",
                format!("g/a.B\\:1.0={good} dubbo\\://10.0.0.2\\:").into_bytes(),
            ),
            (
                "not a key",
                format!("9bad={good}\ng/a.B\\:1.0={good}").into_bytes(),
            ),
            ("empty", Vec::new()),
        ];
        for (name, bytes) in cases {
            let path = dir.join(format!("{}.cache", name.replace(' ', "-")));
            fs::write(&path, &bytes).unwrap();
            let cache = CacheFile::open(path, Tasks::new("test"));
            let cached = cache.cached(&query());
            match name {
                "binary" | "empty" => assert_eq!(cached, None, "{name}"),
                _ => assert_eq!(cached.map(|l| l.len()), Some(1), "{name}"),
            }
        }
        // A directory where the file should be: read as empty, writes fail and are retried.
        let cache = CacheFile::open(dir.clone(), Tasks::new("test"));
        assert_eq!(cache.cached(&query()), None);
    }
}
