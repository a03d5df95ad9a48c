//! Users for the upload server (`main.rs`): registration and login, with
//! the password work on worker threads, off the loop.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use ioplex::{ConnId, Handle};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A reply line, and the user now logged in (if any).
pub type Reply = (String, Option<String>);

/// Results not yet taken, and connections that left while waiting.
type Shared = Arc<Mutex<(HashMap<ConnId, Reply>, HashSet<ConnId>)>>;

/// Password work on worker threads: at most `MAX_JOBS` at once, results
/// kept per connection (and dropped for connections already gone); the
/// worker wakes the loop with `Handle::notify_conn`, which calls the
/// handler's `on_conn_notify` for that connection.
pub struct Auth {
    shared: Shared,
    running: usize,
    handle: Handle,
}

const MAX_JOBS: usize = 4;

impl Auth {
    /// No work yet; results are announced through `handle`.
    pub fn new(handle: Handle) -> Auth {
        let (shared, running) = (Shared::default(), 0);
        Auth {
            shared,
            running,
            handle,
        }
    }

    /// Starts `check_user` (`login`) or `register`; `false` if too many run.
    pub fn start(
        &mut self,
        id: ConnId,
        root: &Path,
        login: bool,
        user: String,
        pw: String,
    ) -> bool {
        if self.running >= MAX_JOBS {
            return false;
        }
        self.running += 1;
        let (shared, root) = (self.shared.clone(), root.to_path_buf());
        let handle = self.handle.clone();
        std::thread::spawn(move || {
            let r = if login {
                self::login(&root, &user, &pw)
            } else {
                register(&root, &user, &pw)
            };
            let mut g = shared.lock().unwrap();
            if !g.1.remove(&id) {
                g.0.insert(id, r);
                drop(g);
                handle.notify_conn(id, 0); // the loop calls `on_conn_notify`
            }
        });
        true
    }

    /// The result for `id`, once its thread is done (it notified `id`).
    pub fn take(&mut self, id: ConnId) -> Option<Reply> {
        let r = self.shared.lock().unwrap().0.remove(&id);
        self.running -= r.is_some() as usize;
        r
    }

    /// `id` left while its job ran: drop the result whenever it comes.
    pub fn forget(&mut self, id: ConnId) {
        self.running -= 1;
        let mut g = self.shared.lock().unwrap();
        if g.0.remove(&id).is_none() {
            g.1.insert(id);
        }
    }
}

/// A user name: 1 to 32 of `A-Z a-z 0-9 _ -` (it becomes a directory).
pub fn valid_user(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `register`: creates `ROOT/USER/` (atomically: a second registration of
/// the same name fails) and its record with an Argon2id hash (salted, slow).
/// Runs on a worker thread.
fn register(root: &Path, user: &str, password: &str) -> Reply {
    if !valid_user(user) || password.is_empty() || password.len() > 1024 {
        return ("error: bad user name or password".into(), None);
    }
    let dir = root.join(user);
    if std::fs::create_dir(&dir).is_err() {
        return ("error: user exists".into(), None);
    }
    let hash = match Argon2::default().hash_password(password.as_bytes()) {
        Ok(h) => h.to_string(),
        Err(e) => return (format!("error: hashing failed: {e}"), None),
    };
    let info = serde_json::json!({ "username": user, "password": hash, "disk_limit": 1u64 << 30 });
    let tmp = dir.join("user_info.json.tmp");
    let written = std::fs::create_dir(crate::files::dir(root, user))
        .and_then(|_| std::fs::write(&tmp, info.to_string()))
        .and_then(|_| std::fs::rename(&tmp, dir.join("user_info.json")));
    match written {
        Ok(()) => ("注册成功".into(), None),
        Err(e) => (format!("error: cannot store user: {e}"), None),
    }
}

/// `check_user`: the notes' three answers. Runs on a worker thread.
fn login(root: &Path, user: &str, password: &str) -> Reply {
    let record = valid_user(user)
        .then(|| std::fs::read(root.join(user).join("user_info.json")).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(hash) = record.as_ref().and_then(|r| r["password"].as_str()) else {
        return ("用户名不存在".into(), None);
    };
    let ok = PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    if ok {
        ("登陆成功".into(), Some(user.to_string()))
    } else {
        ("密码错误".into(), None)
    }
}
