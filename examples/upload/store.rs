//! Users for the upload server (`main.rs`): registration and login, run on
//! worker threads (`pool.rs`), off the loop: each hashes a password.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a registration or a login came to.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Registered,
    /// A registration or login refused for a reason stated to the client.
    Refused(String),
    /// Logged in; the user's quota (`disk_limit`) in bytes.
    LoggedIn(u64),
    WrongPassword,
    NoSuchUser,
}

impl Outcome {
    /// The reply line: the notes' words, or `error: ...`.
    pub fn line(&self) -> String {
        match self {
            Outcome::Registered => "注册成功".into(),
            Outcome::Refused(why) => format!("error: {why}"),
            Outcome::LoggedIn(_) => "登陆成功".into(),
            Outcome::WrongPassword => "密码错误".into(),
            Outcome::NoSuchUser => "用户名不存在".into(),
        }
    }
}

/// A user name: 1 to 32 of `A-Z a-z 0-9 _ -` (it becomes a directory, and
/// can never start with the `.` of a registration under way).
pub fn valid_user(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Where a registration is built before it is renamed into place.
const BUILDING: &str = ".register-";

/// Removes what registrations cut short (a crash) left behind; at start.
pub fn clean(root: &Path) {
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(BUILDING) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `register`: builds `ROOT/.register-USER-N/` (the user's folders and a
/// record with an Argon2id hash, salted and slow), then renames it to
/// `ROOT/USER` in one step. All or nothing: on any failure (ENOSPC, …) the
/// folder is removed and the name stays free; when two register one name
/// at once, the second rename fails and that one is told the user exists.
pub fn register(root: &Path, user: &str, password: &str, quota: u64) -> Outcome {
    if !valid_user(user) || password.is_empty() || password.len() > 1024 {
        return Outcome::Refused("bad user name or password".into());
    }
    let home = root.join(user);
    if home.exists() {
        return Outcome::Refused("user exists".into());
    }
    let hash = match Argon2::default().hash_password(password.as_bytes()) {
        Ok(h) => h.to_string(),
        Err(e) => return Outcome::Refused(format!("hashing failed: {e}")),
    };
    let info = serde_json::json!({ "username": user, "password": hash, "disk_limit": quota });
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = root.join(format!(
        "{BUILDING}{user}-{}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let built = std::fs::create_dir(&tmp)
        .and_then(|_| {
            crate::files::DIRS
                .iter()
                .try_for_each(|d| std::fs::create_dir(tmp.join(d)))
        })
        .and_then(|_| std::fs::write(tmp.join("user_info.json"), info.to_string()))
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all());
    let placed = built.and_then(|_| std::fs::rename(&tmp, &home));
    match placed {
        Ok(()) => Outcome::Registered,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            if home.exists() {
                return Outcome::Refused("user exists".into()); // registered meanwhile
            }
            Outcome::Refused(format!("cannot store user: {e}"))
        }
    }
}

/// `check_user`: the notes' three answers.
pub fn login(root: &Path, user: &str, password: &str) -> Outcome {
    let record = valid_user(user)
        .then(|| std::fs::read(root.join(user).join("user_info.json")).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(r) = record else {
        return Outcome::NoSuchUser;
    };
    let ok = r["password"]
        .as_str()
        .and_then(|h| PasswordHash::new(h).ok())
        .is_some_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
    match r["disk_limit"].as_u64() {
        Some(quota) if ok => Outcome::LoggedIn(quota),
        _ => Outcome::WrongPassword,
    }
}
