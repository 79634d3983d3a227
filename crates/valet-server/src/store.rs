//! The SQLite store: convos, messages (with drafts for uploads), files.
//!
//! Decisions:
//! - Group commit: one writer thread owns the write connection. Writes are
//!   jobs on its queue; it takes every job that queued while the last commit
//!   was syncing, runs each in a savepoint (one failing does not undo the
//!   others) inside one transaction, and commits once. SQLite's cost is the
//!   fsync per commit, so this is where the durable throughput comes from.
//! - WAL with `synchronous=FULL`: nothing is acknowledged (a write's future
//!   resolves, so a handler answers 2xx) or fanned out before the commit that
//!   holds it is durable: a job's after-commit actions ([`AfterCommit`]),
//!   such as publishing a new message, run on the writer thread once the
//!   commit returned, in job order, and a failed commit runs none of them
//!   (every waiter of that batch gets an error).
//! - Reads go to their own connections ([`Store::read`]; WAL lets them run
//!   beside the writer), never behind it. An in-memory database can not be
//!   shared between connections, so there reads are jobs of the writer too.
//! - Each convo numbers its messages (`seq` 1, 2, 3, ...) inside the insert's
//!   savepoint. One writer assigns them and publishes after commit in job
//!   order, so live delivery order is commit order is `seq` order.
//! - An idempotency key is unique per convo: a retried send finds the
//!   message it already stored instead of storing a second one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, Row};
use valet_core::wire::{Author, ConvoState, ConvoSummary, Message, MessageFile, Participant};

/// A convo as stored.
#[derive(Debug, Clone)]
pub struct ConvoRow {
    /// Id.
    pub id: String,
    /// Owner company (API key).
    pub company: String,
    /// Owner appuser.
    pub source_key: String,
    /// The agent.
    pub agent_id: String,
    /// State.
    pub state: ConvoState,
    /// Creation time.
    pub created_at: String,
    /// Newest message time.
    pub last_message_at: Option<String>,
    /// The current turn number.
    pub turn_number: u64,
    /// Files attached so far.
    pub files_count: u32,
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Author.
    pub from: Author,
    /// Text.
    pub content: String,
    /// For replies: the turn they answer. `None` starts a new turn (user messages).
    pub turn_number: Option<u64>,
    /// Shown author.
    pub participant: Option<Participant>,
    /// Client idempotency key.
    pub idempotency_key: Option<String>,
    /// A draft (from `upload_file`) to finalize instead of inserting.
    pub draft_id: Option<String>,
    /// The id to give a new message (a streamed reply's, announced by its
    /// `message_delta` frames); `None` draws one.
    pub id: Option<String>,
}

/// A file to store with a draft.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Original name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Content.
    pub data: Vec<u8>,
}

/// The outcome of an append.
#[derive(Debug, Clone)]
pub enum Appended {
    /// Stored now.
    New(Message),
    /// The idempotency key was seen: the message stored the first time.
    Existing(Message),
}

/// Store failures a handler maps to API errors.
#[derive(Debug)]
pub enum StoreError {
    /// The draft does not exist in this convo or is already sent.
    NoSuchDraft,
    /// SQLite failed.
    Sql(rusqlite::Error),
    /// The commit holding the write failed (nothing of it was stored), or
    /// the writer is gone.
    NotCommitted,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NoSuchDraft => f.write_str("no such draft message"),
            StoreError::Sql(e) => write!(f, "sqlite: {e}"),
            StoreError::NotCommitted => f.write_str("the write was not committed"),
        }
    }
}

/// The database, used under the store's lock.
pub struct Db {
    conn: Connection,
    public_url: String,
}

/// Work run after the commit that holds a write is durable, in order, on
/// the writer thread (publishing a message, answering the caller).
#[derive(Default)]
pub struct AfterCommit(Vec<Box<dyn FnOnce() + Send>>);

impl AfterCommit {
    /// Runs `f` once the write is durable (never, if its commit fails).
    pub fn then(&mut self, f: impl FnOnce() + Send + 'static) {
        self.0.push(Box::new(f));
    }
}

/// A write job: runs in a savepoint; `false` rolls that savepoint back.
type Job = Box<dyn FnOnce(&mut Db, &mut AfterCommit) -> bool + Send>;

/// Most jobs in one transaction.
const MAX_BATCH: usize = 1024;
/// Read connections of a database file.
const READERS: usize = 3;

/// Shared handle to the database.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Job>,
    /// Read connections (empty for `:memory:`: reads are writer jobs).
    readers: Arc<Vec<Mutex<Db>>>,
    next_reader: Arc<AtomicUsize>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS convos (
  id TEXT PRIMARY KEY,
  company TEXT NOT NULL,
  source_key TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at TEXT NOT NULL,
  last_message_at TEXT,
  next_seq INTEGER NOT NULL DEFAULT 1,
  turn_number INTEGER NOT NULL DEFAULT 0,
  files_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS convos_owner ON convos(company, source_key, agent_id);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  convo_id TEXT NOT NULL REFERENCES convos(id),
  seq INTEGER,
  author TEXT NOT NULL,
  content TEXT NOT NULL,
  turn_number INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  participant TEXT,
  idempotency_key TEXT,
  draft INTEGER NOT NULL DEFAULT 0,
  UNIQUE (convo_id, seq),
  UNIQUE (convo_id, idempotency_key)
);
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY,
  message_id TEXT NOT NULL REFERENCES messages(id),
  position INTEGER NOT NULL,
  filename TEXT NOT NULL,
  content_type TEXT NOT NULL,
  byte_size INTEGER NOT NULL,
  data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS files_message ON files(message_id);
";

/// Now, as Unix epoch milliseconds (`turn_done.at`, `error.at`).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Now, as the contract's ISO-8601 string (UTC, milliseconds).
pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn author_str(a: Author) -> &'static str {
    match a {
        Author::Appuser => "appuser",
        Author::AiAgent => "ai_agent",
        Author::HumanAgent => "human_agent",
        Author::Unknown => "unknown",
    }
}

fn parse_author(s: &str) -> Author {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(Author::Unknown)
}

impl Store {
    /// Opens (and migrates) the database at `path` (`:memory:` allowed) and
    /// starts its writer thread.
    pub fn open(path: &str, public_url: &str) -> rusqlite::Result<Store> {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let mut readers = Vec::new();
        if path != ":memory:" && !path.is_empty() {
            for _ in 0..READERS {
                let r = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                r.busy_timeout(std::time::Duration::from_secs(5))?;
                readers.push(Mutex::new(Db { conn: r, public_url: public_url.clone() }));
            }
        }
        let (writer, jobs) = mpsc::channel::<Job>();
        let db = Db { conn, public_url };
        std::thread::Builder::new()
            .name("valet-store-writer".into())
            .spawn(move || write_loop(db, jobs))
            .expect("the writer thread starts");
        Ok(Store { writer, readers: Arc::new(readers), next_reader: Arc::new(AtomicUsize::new(0)) })
    }

    /// A write: `f` runs on the writer thread inside a savepoint of the next
    /// group commit; its result comes back once that commit is durable
    /// (`f`'s [`AfterCommit`] work has run by then). An `Err` from `f`
    /// rolls its savepoint back.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Db, &mut AfterCommit) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db, after| match f(db, after) {
            Ok(r) => {
                after.then(move || {
                    let _ = tx.send(Ok(r));
                });
                true
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                false
            }
        });
        self.writer.send(job).map_err(|_| StoreError::NotCommitted)?;
        rx.await.unwrap_or(Err(StoreError::NotCommitted))
    }

    /// A read on a read connection (beside the writer, never behind it), on
    /// the blocking pool; for `:memory:`, a job of the writer.
    pub async fn read<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&Db) -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.readers.is_empty() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let job: Job = Box::new(move |db, _| {
                let _ = tx.send(f(db));
                true
            });
            self.writer.send(job).expect("the writer thread runs while the store exists");
            return rx.await.expect("the writer thread answers every job");
        }
        let readers = self.readers.clone();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            let guard = (0..n)
                .find_map(|k| readers[(start + k) % n].try_lock().ok())
                .unwrap_or_else(|| readers[start % n].lock().unwrap_or_else(|p| p.into_inner()));
            f(&guard)
        })
        .await
        .expect("store read panicked")
    }
}

/// The writer thread: group commits until every [`Store`] handle is gone.
fn write_loop(mut db: Db, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = db.conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "store: cannot begin a transaction");
            continue; // dropping the batch fails its waiters
        }
        let mut after = AfterCommit::default();
        for job in batch {
            let _ = db.conn.execute_batch("SAVEPOINT job");
            let keep = job(&mut db, &mut after);
            let _ = db.conn.execute_batch(if keep { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" });
        }
        match db.conn.execute_batch("COMMIT") {
            Ok(()) => {
                for f in after.0 {
                    f();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store: commit failed; nothing of the batch is stored or acknowledged");
                let _ = db.conn.execute_batch("ROLLBACK");
            }
        }
    }
}

impl Db {
    fn convo_from_row(row: &Row<'_>) -> rusqlite::Result<ConvoRow> {
        let state: String = row.get(4)?;
        Ok(ConvoRow {
            id: row.get(0)?,
            company: row.get(1)?,
            source_key: row.get(2)?,
            agent_id: row.get(3)?,
            state: ConvoState::parse(&state).unwrap_or(ConvoState::Unknown),
            created_at: row.get(5)?,
            last_message_at: row.get(6)?,
            turn_number: row.get(7)?,
            files_count: row.get(8)?,
        })
    }

    const CONVO_COLS: &'static str = "id, company, source_key, agent_id, state, created_at, last_message_at, turn_number, files_count";

    /// Creates a convo for an appuser and agent.
    pub fn create_convo(&mut self, company: &str, source_key: &str, agent_id: &str) -> rusqlite::Result<ConvoRow> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_iso();
        self.conn.execute(
            "INSERT INTO convos (id, company, source_key, agent_id, state, created_at) VALUES (?1, ?2, ?3, ?4, 'open', ?5)",
            params![id, company, source_key, agent_id, now],
        )?;
        Ok(ConvoRow {
            id,
            company: company.into(),
            source_key: source_key.into(),
            agent_id: agent_id.into(),
            state: ConvoState::Open,
            created_at: now,
            last_message_at: None,
            turn_number: 0,
            files_count: 0,
        })
    }

    /// A convo by id.
    pub fn convo(&self, id: &str) -> rusqlite::Result<Option<ConvoRow>> {
        self.conn.query_row(&format!("SELECT {} FROM convos WHERE id = ?1", Self::CONVO_COLS), [id], Self::convo_from_row).optional()
    }

    /// An appuser's convos with an agent, newest first.
    pub fn list_convos(&self, company: &str, source_key: &str, agent_id: &str) -> rusqlite::Result<Vec<ConvoSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM convos WHERE company = ?1 AND source_key = ?2 AND agent_id = ?3
             ORDER BY COALESCE(last_message_at, created_at) DESC, created_at DESC",
            Self::CONVO_COLS
        ))?;
        let rows = stmt.query_map(params![company, source_key, agent_id], Self::convo_from_row)?;
        rows.map(|r| {
            r.map(|c| ConvoSummary {
                id: c.id,
                state: c.state,
                closed: c.state.is_closed(),
                last_message_at: c.last_message_at,
                created_at: c.created_at,
            })
        })
        .collect()
    }

    /// Sets a convo's state; returns the previous one.
    pub fn set_state(&mut self, convo_id: &str, state: ConvoState) -> rusqlite::Result<ConvoState> {
        let tx = self.conn.savepoint()?;
        let prev: String = tx.query_row("SELECT state FROM convos WHERE id = ?1", [convo_id], |r| r.get(0))?;
        tx.execute("UPDATE convos SET state = ?2 WHERE id = ?1", params![convo_id, state.as_str()])?;
        tx.commit()?;
        Ok(ConvoState::parse(&prev).unwrap_or(ConvoState::Unknown))
    }

    /// The `seq` of a sent message of the convo, if it exists.
    pub fn seq_of(&self, convo_id: &str, message_id: &str) -> rusqlite::Result<Option<u64>> {
        self.conn
            .query_row("SELECT seq FROM messages WHERE convo_id = ?1 AND id = ?2 AND draft = 0", [convo_id, message_id], |r| r.get(0))
            .optional()
    }

    /// Sent messages of a convo with `seq > after`, in order.
    pub fn history(&self, convo_id: &str, after: u64) -> rusqlite::Result<Vec<Message>> {
        self.history_limited(convo_id, after, -1)
    }

    /// At most `limit` sent messages with `seq > after` (`-1`: no limit).
    fn history_limited(&self, convo_id: &str, after: u64, limit: i64) -> rusqlite::Result<Vec<Message>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, content, author, turn_number, created_at, participant, seq FROM messages
             WHERE convo_id = ?1 AND draft = 0 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut messages: Vec<Message> = stmt
            .query_map(params![convo_id, after, limit], |r| {
                let participant: Option<String> = r.get(5)?;
                Ok(Message {
                    id: r.get(0)?,
                    content: r.get(1)?,
                    from: parse_author(&r.get::<_, String>(2)?),
                    turn_number: r.get(3)?,
                    created_at: r.get(4)?,
                    participant: participant.and_then(|p| serde_json::from_str(&p).ok()),
                    files: Vec::new(),
                    seq: Some(r.get(6)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut files = self.conn.prepare_cached(
            "SELECT f.message_id, f.id, f.filename, f.content_type, f.byte_size FROM files f
             JOIN messages m ON m.id = f.message_id
             WHERE m.convo_id = ?1 AND m.draft = 0 AND m.seq > ?2 AND m.seq <= ?3 ORDER BY m.seq, f.position",
        )?;
        let last = messages.last().and_then(|m| m.seq).unwrap_or(after);
        let mut rows = files.query(params![convo_id, after, last])?;
        let mut idx = 0;
        while let Some(r) = rows.next()? {
            let message_id: String = r.get(0)?;
            while idx < messages.len() && messages[idx].id != message_id {
                idx += 1;
            }
            if let Some(m) = messages.get_mut(idx) {
                m.files.push(self.message_file(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
            }
        }
        Ok(messages)
    }

    fn message_file(&self, id: String, filename: String, content_type: String, byte_size: u64) -> MessageFile {
        MessageFile { url: format!("{}/files/{}", self.public_url, id), filename, content_type, byte_size }
    }

    /// Appends a message (or finalizes a draft), assigning its `seq`.
    pub fn append(&mut self, convo_id: &str, new: NewMessage) -> Result<Appended, StoreError> {
        if let Some(key) = &new.idempotency_key {
            let existing: Option<String> = self
                .conn
                .query_row("SELECT id FROM messages WHERE convo_id = ?1 AND idempotency_key = ?2 AND draft = 0", [convo_id, key], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(id) = existing {
                let seq = self.seq_of(convo_id, &id)?.unwrap_or(0);
                let msg = self.history_limited(convo_id, seq.saturating_sub(1), 1)?.into_iter().next();
                return msg.map(Appended::Existing).ok_or(StoreError::NoSuchDraft);
            }
        }
        let now = now_iso();
        let tx = self.conn.savepoint()?;
        let (seq, turn): (u64, u64) =
            tx.query_row("SELECT next_seq, turn_number FROM convos WHERE id = ?1", [convo_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let turn_number = match new.turn_number {
            Some(t) => t,
            None => turn + 1,
        };
        let participant = new.participant.as_ref().map(|p| serde_json::to_string(p).expect("serializable"));
        let id = match &new.draft_id {
            Some(draft) => {
                let n = tx.execute(
                    "UPDATE messages SET content = ?3, seq = ?4, turn_number = ?5, created_at = ?6, idempotency_key = ?7, draft = 0
                     WHERE id = ?1 AND convo_id = ?2 AND draft = 1",
                    params![draft, convo_id, new.content, seq, turn_number, now, new.idempotency_key],
                )?;
                if n == 0 {
                    return Err(StoreError::NoSuchDraft);
                }
                draft.clone()
            }
            None => {
                let id = new.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                tx.execute(
                    "INSERT INTO messages (id, convo_id, seq, author, content, turn_number, created_at, participant, idempotency_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![id, convo_id, seq, author_str(new.from), new.content, turn_number, now, participant, new.idempotency_key],
                )?;
                id
            }
        };
        tx.execute(
            "UPDATE convos SET next_seq = next_seq + 1, turn_number = ?2, last_message_at = ?3 WHERE id = ?1",
            params![convo_id, turn_number.max(turn), now],
        )?;
        tx.commit()?;
        let mut message = Message {
            id: id.clone(),
            content: new.content,
            from: new.from,
            turn_number,
            created_at: now,
            participant: new.participant,
            files: Vec::new(),
            seq: Some(seq),
        };
        if new.draft_id.is_some() {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id, filename, content_type, byte_size FROM files WHERE message_id = ?1 ORDER BY position")?;
            let files =
                stmt.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            message.files = files.into_iter().map(|(i, f, c, b)| self.message_file(i, f, c, b)).collect();
        }
        Ok(Appended::New(message))
    }

    /// Stores files as a draft appuser message; returns the draft's id.
    pub fn create_draft(&mut self, convo_id: &str, files: Vec<NewFile>) -> rusqlite::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let tx = self.conn.savepoint()?;
        tx.execute(
            "INSERT INTO messages (id, convo_id, seq, author, content, turn_number, created_at, draft)
             VALUES (?1, ?2, NULL, 'appuser', '', 0, ?3, 1)",
            params![id, convo_id, now_iso()],
        )?;
        for (i, f) in files.iter().enumerate() {
            tx.execute(
                "INSERT INTO files (id, message_id, position, filename, content_type, byte_size, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![uuid::Uuid::new_v4().to_string(), id, i, f.filename, f.content_type, f.data.len(), f.data],
            )?;
        }
        tx.execute("UPDATE convos SET files_count = files_count + ?2 WHERE id = ?1", params![convo_id, files.len()])?;
        tx.commit()?;
        Ok(id)
    }

    /// A stored file: (filename, content type, bytes).
    pub fn file(&self, id: &str) -> rusqlite::Result<Option<(String, String, Vec<u8>)>> {
        self.conn
            .query_row("SELECT filename, content_type, data FROM files WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
    }

    /// Sent messages across all convos.
    pub fn count_messages(&self) -> rusqlite::Result<u64> {
        self.conn.query_row("SELECT COUNT(*) FROM messages WHERE draft = 0", [], |r| r.get(0))
    }

    /// Convos stored.
    pub fn count_convos(&self) -> rusqlite::Result<u64> {
        self.conn.query_row("SELECT COUNT(*) FROM convos", [], |r| r.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_message(text: &str) -> NewMessage {
        NewMessage {
            from: Author::Appuser,
            content: text.into(),
            turn_number: None,
            participant: None,
            idempotency_key: None,
            draft_id: None,
            id: None,
        }
    }

    /// Many writers at once share commits; a job that fails rolls back
    /// only itself; after-commit work runs once durable, in seq order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_keeps_each_write_whole_and_publishes_in_seq_order() {
        for path in [
            ":memory:".to_owned(),
            std::env::temp_dir().join(format!("valet-store-{}.db", std::process::id())).to_string_lossy().into_owned(),
        ] {
            let store = Store::open(&path, "http://x").unwrap();
            let convo = store.write(|db, _| db.create_convo("c", "u", "a").map_err(StoreError::Sql)).await.unwrap();
            let published = Arc::new(Mutex::new(Vec::new()));
            let mut writes = Vec::new();
            for i in 0..200u32 {
                let (store, id, published) = (store.clone(), convo.id.clone(), published.clone());
                writes.push(tokio::spawn(async move {
                    store
                        .write(move |db, after| {
                            let Appended::New(m) = db.append(&id, new_message(&format!("m{i}")))? else { unreachable!() };
                            if i % 7 == 3 {
                                // Fails after writing: its savepoint is rolled back.
                                return Err(StoreError::NoSuchDraft);
                            }
                            let seq = m.seq.unwrap();
                            after.then(move || published.lock().unwrap().push(seq));
                            Ok(seq)
                        })
                        .await
                }));
            }
            let mut ok = 0;
            for (i, w) in writes.into_iter().enumerate() {
                match w.await.unwrap() {
                    Ok(_) => ok += 1,
                    Err(StoreError::NoSuchDraft) => assert_eq!(i % 7, 3),
                    Err(e) => panic!("{e}"),
                }
            }
            let id = convo.id.clone();
            let history = store.read(move |db| db.history(&id, 0)).await.unwrap();
            assert_eq!(history.len(), ok, "{path}: exactly the writes that succeeded are stored");
            assert!(history.iter().all(|m| m.content != "m3"), "a failed job left nothing");
            let seqs: Vec<u64> = history.iter().map(|m| m.seq.unwrap()).collect();
            assert_eq!(seqs, (1..=ok as u64).collect::<Vec<_>>(), "seq has no hole where a job failed");
            assert_eq!(*published.lock().unwrap(), seqs, "{path}: published after commit, in seq order");
            if path != ":memory:" {
                drop(store);
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}
