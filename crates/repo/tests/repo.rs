//! The repository reader against real git repositories made here: local paths and file://
//! URLs, branches, fetches, blobs parsed once, subfolders and diffs.

use std::path::Path;
use std::process::Command;

use drover_repo::DagRepo;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap_or_else(|e| panic!("git: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write_commit(repo: &Path, path: &str, text: &str) -> String {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().unwrap_or(repo)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", path]);
    git(repo, &["rev-parse", "HEAD"])
}

const A: &str = "id: a\ntasks:\n  - id: t\n    noop: {}\n";

#[test]
fn a_file_url_is_cloned_and_fetched_and_commits_are_read_without_checkout() {
    let origin = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let o = origin.path();
    git(o, &["init", "-q", "-b", "main"]);
    let c1 = write_commit(o, "dags/a.yaml", A);
    write_commit(o, "other/ignored.yaml", "not: a dag\n");
    let c2 = git(o, &["rev-parse", "HEAD"]);
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("file://{}", o.display());
    let mut repo = DagRepo::open(&url, "dags", cache.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repo.head_of("main").ok(), Some(c2.clone()));
    assert!(repo.head_of("nope").is_err());
    let snap = repo.snapshot(&c1).unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<(&str, Option<&str>)> = snap
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.dag_id.as_deref()))
        .collect();
    assert_eq!(files, vec![("dags/a.yaml", Some("a"))]);
    // The blob id is git's.
    assert_eq!(
        snap.files[0].blob_id,
        git(o, &["rev-parse", &format!("{c1}:dags/a.yaml")])
    );

    // A new commit upstream is seen after a fetch, not before.
    let c3 = write_commit(o, "dags/b.yaml", "id: b\ntasks: [\n");
    assert_eq!(repo.head_of("main").ok(), Some(c2));
    repo.fetch().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repo.head_of("main").ok(), Some(c3.clone()));
    let snap = repo.snapshot(&c3).unwrap_or_else(|e| panic!("{e}"));
    let broken: Vec<&str> = snap.broken().map(|f| f.path.as_str()).collect();
    assert_eq!(broken, vec!["dags/b.yaml"]);
    assert!(
        snap.broken()
            .next()
            .is_some_and(|f| f.errors[0].to_string().starts_with("dags/b.yaml:"))
    );
    assert_eq!(repo.resolve(&c3[..8]).ok(), Some(c3.clone()));
    assert!(repo.resolve("0123456789abcdef").is_err());
    let diff = repo
        .diff_text(Some(&c1), &c3)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        diff.contains("+++ b/dags/b.yaml") && !diff.contains("ignored.yaml"),
        "{diff}"
    );
    // Reopening reuses the clone.
    assert!(DagRepo::open(&url, "dags", cache.path()).is_ok());
}

#[test]
fn a_local_path_reads_branches_and_a_missing_subfolder_has_no_dags() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    let c1 = write_commit(d, "pipelines/a.yaml", A);
    let mut repo = DagRepo::open(&d.display().to_string(), "dags", Path::new("/nonexistent"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repo.head_of("main").ok(), Some(c1.clone()));
    assert!(
        repo.snapshot(&c1)
            .map(|s| s.files.is_empty())
            .unwrap_or(false)
    );
    let mut root = DagRepo::open(
        &d.display().to_string(),
        "pipelines",
        Path::new("/nonexistent"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root.snapshot(&c1).map(|s| s.files.len()).unwrap_or(0), 1);
}

#[test]
fn a_dags_folder_in_a_checkout_knows_its_branch_and_what_is_uncommitted() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = tmp.path();
    assert_eq!(
        drover_repo::checkout_of(&d.join("dags")).unwrap_or_else(|e| panic!("{e}")),
        None,
        "not a checkout"
    );
    git(d, &["init", "-q", "-b", "feature/scores"]);
    write_commit(d, "dags/a.yaml", "id: a\ntasks: [{id: t, noop: {}}]\n");
    std::fs::write(d.join("dags/b.yaml"), "id: b\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.join("README"), "outside the DAGs folder\n").unwrap_or_else(|e| panic!("{e}"));
    let found = drover_repo::checkout_of(&d.join("dags"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the checkout was not found"));
    assert_eq!(found.branch.as_deref(), Some("feature/scores"));
    assert_eq!(found.subdir, "dags");
    assert_eq!(found.uncommitted, vec!["dags/b.yaml".to_owned()]);
    assert_eq!(
        std::fs::canonicalize(d).unwrap_or_else(|e| panic!("{e}")),
        found.root
    );
    // A detached HEAD has no branch to follow.
    let head = git(d, &["rev-parse", "HEAD"]);
    git(d, &["checkout", "-q", &head]);
    let detached = drover_repo::checkout_of(&d.join("dags"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the checkout was not found"));
    assert_eq!(detached.branch, None);
}

/// An HTTP server that answers 401 (Basic) to every request; counts the requests that carried
/// credentials.
fn refusing_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let with_auth = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = with_auth.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => continue,
            });
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                if line == "\r\n" {
                    let _ = stream.write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                          Content-Length: 0\r\n\r\n",
                    );
                }
                line.clear();
            }
        }
    });
    (format!("http://127.0.0.1:{port}/dags.git"), with_auth)
}

#[test]
fn a_refused_token_fails_the_fetch_at_once_and_says_why() {
    let (url, with_auth) = refusing_server();
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut repo =
        DagRepo::open_unfetched(&url, "dags", cache.path()).unwrap_or_else(|e| panic!("{e}"));
    repo.set_credentials(drover_repo::GitCredentials {
        username: Some("drover".to_owned()),
        token: Some("not-a-valid-token".to_owned()),
    });
    repo.set_fetch_timeout(std::time::Duration::from_secs(30));
    let start = std::time::Instant::now();
    let Err(e) = repo.fetch() else {
        panic!("the fetch must fail");
    };
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let message = e.to_string();
    assert!(
        message.contains("the remote refused the token in DROVER_GIT_TOKEN (HTTP 401)"),
        "{message}"
    );
    assert!(!message.contains("not-a-valid-token"), "{message}");
    // The token was offered once: the callback gave it, then gave up.
    assert_eq!(with_auth.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_remote_that_never_answers_is_given_up_after_the_timeout() {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    // Accept and hold every connection, never answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://127.0.0.1:{port}/dags.git");
    let mut repo =
        DagRepo::open_unfetched(&url, "dags", cache.path()).unwrap_or_else(|e| panic!("{e}"));
    repo.set_fetch_timeout(std::time::Duration::from_secs(1));
    let start = std::time::Instant::now();
    let first = repo.fetch();
    assert!(
        matches!(first, Err(drover_repo::RepoError::FetchTimeout(_))),
        "{first:?}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        first
            .err()
            .is_some_and(|e| e.to_string().contains("did not answer within 1s"))
    );
    // The hung fetch is not joined by another.
    let second = repo.fetch();
    assert!(
        matches!(second, Err(drover_repo::RepoError::FetchStillRunning)),
        "{second:?}"
    );
    // The repository itself stays usable meanwhile.
    assert!(repo.head_of("main").is_err());
}

#[test]
fn a_dag_file_over_the_size_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    write_commit(d, "dags/a.yaml", A);
    let big = format!(
        "id: big\ndescription: \"{}\"\ntasks: []\n",
        "x".repeat(5_000)
    );
    let c = write_commit(d, "dags/big.yaml", &big);
    let mut repo = DagRepo::open(&d.display().to_string(), "dags", Path::new("/nonexistent"))
        .unwrap_or_else(|e| panic!("{e}"));
    repo.set_max_file_bytes(1_000);
    let snap = repo.snapshot(&c).unwrap_or_else(|e| panic!("{e}"));
    let valid: Vec<&str> = snap.valid().map(|f| f.path.as_str()).collect();
    assert_eq!(valid, vec!["dags/a.yaml"], "the other DAG is unaffected");
    let broken: Vec<String> = snap.broken().map(|f| f.errors[0].to_string()).collect();
    assert_eq!(broken.len(), 1);
    assert!(
        broken[0].starts_with(&format!(
            "dags/big.yaml:1:1: file is 5 kB ({} bytes), over the 1 kB limit",
            big.len()
        )),
        "{}",
        broken[0]
    );
}
