//! The SQLite store: convos, messages (with drafts for uploads), files.
//!
//! Decisions:
//! - One connection behind a mutex, used from `spawn_blocking`. SQLite
//!   serializes writers anyway; one connection also makes `:memory:` work.
//! - WAL with `synchronous=FULL`: a message acknowledged with 2xx has been
//!   committed and survives `kill -9` (and power loss).
//! - Each convo numbers its messages (`seq` 1, 2, 3, ...) inside the insert's
//!   transaction. Callers publish a new message while still holding the lock
//!   ([`Store::run`]), so live delivery order is commit order is `seq` order.
//! - An idempotency key is unique per convo: a retried send finds the
//!   message it already stored instead of storing a second one.

use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, Row};
use valet_core::wire::{Author, ConvoState, ConvoSummary, FileRef, Message, Participant};

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
        }
    }
}

/// The database, used under the store's lock.
pub struct Db {
    conn: Connection,
    public_url: String,
}

/// Shared handle to the database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Mutex<Db>>,
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
    /// Opens (and migrates) the database at `path` (`:memory:` allowed).
    pub fn open(path: &str, public_url: &str) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { db: Arc::new(Mutex::new(Db { conn, public_url: public_url.trim_end_matches('/').to_owned() })) })
    }

    /// Runs `f` on the database under the lock, on the blocking pool.
    pub async fn run<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&mut Db) -> R + Send + 'static,
        R: Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .expect("store task panicked")
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

    const CONVO_COLS: &'static str =
        "id, company, source_key, agent_id, state, created_at, last_message_at, turn_number, files_count";

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
        self.conn
            .query_row(&format!("SELECT {} FROM convos WHERE id = ?1", Self::CONVO_COLS), [id], Self::convo_from_row)
            .optional()
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
        let tx = self.conn.transaction()?;
        let prev: String = tx.query_row("SELECT state FROM convos WHERE id = ?1", [convo_id], |r| r.get(0))?;
        tx.execute("UPDATE convos SET state = ?2 WHERE id = ?1", params![convo_id, state.as_str()])?;
        tx.commit()?;
        Ok(ConvoState::parse(&prev).unwrap_or(ConvoState::Unknown))
    }

    /// The `seq` of a sent message of the convo, if it exists.
    pub fn seq_of(&self, convo_id: &str, message_id: &str) -> rusqlite::Result<Option<u64>> {
        self.conn
            .query_row(
                "SELECT seq FROM messages WHERE convo_id = ?1 AND id = ?2 AND draft = 0",
                [convo_id, message_id],
                |r| r.get(0),
            )
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
                m.files.push(self.file_ref(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
            }
        }
        Ok(messages)
    }

    fn file_ref(&self, id: String, filename: String, content_type: String, byte_size: u64) -> FileRef {
        FileRef { url: format!("{}/files/{}", self.public_url, id), filename, content_type, byte_size }
    }

    /// Appends a message (or finalizes a draft), assigning its `seq`.
    pub fn append(&mut self, convo_id: &str, new: NewMessage) -> Result<Appended, StoreError> {
        if let Some(key) = &new.idempotency_key {
            let existing: Option<String> = self
                .conn
                .query_row(
                    "SELECT id FROM messages WHERE convo_id = ?1 AND idempotency_key = ?2 AND draft = 0",
                    [convo_id, key],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing {
                let seq = self.seq_of(convo_id, &id)?.unwrap_or(0);
                let msg = self.history_limited(convo_id, seq.saturating_sub(1), 1)?.into_iter().next();
                return msg.map(Appended::Existing).ok_or(StoreError::NoSuchDraft);
            }
        }
        let now = now_iso();
        let tx = self.conn.transaction()?;
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
                let id = uuid::Uuid::new_v4().to_string();
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
            let files = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            message.files = files.into_iter().map(|(i, f, c, b)| self.file_ref(i, f, c, b)).collect();
        }
        Ok(Appended::New(message))
    }

    /// Stores files as a draft appuser message; returns the draft's id.
    pub fn create_draft(&mut self, convo_id: &str, files: Vec<NewFile>) -> rusqlite::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let tx = self.conn.transaction()?;
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
            .query_row("SELECT filename, content_type, data FROM files WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
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
