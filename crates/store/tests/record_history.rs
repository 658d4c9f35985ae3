//! The record history query on touches written as returns and revert jobs write them: by key
//! and by MAP id, newest first, limited, per environment; and its pruning. Each test uses a
//! database of its own on the Postgres at DROVER_TEST_DATABASE_URL (default 127.0.0.1:5432).

use drover_store::RecordQuery;
use uuid::Uuid;

mod support;
use support::{Db, db};

impl Db {
    /// A touch `hours_ago`.
    async fn touch(
        &self,
        env: &str,
        lookup: &str,
        key: &str,
        map_id: Option<i64>,
        dag: &str,
        hours_ago: i32,
    ) -> i64 {
        sqlx::query_scalar(
            "insert into record_touch (environment, lookup_field, key, map_id, run_id, dag_id, task_id, try_number,
                                       touched_at, status, changes)
             values ($1, $2, $3, $4, $5, $6, 'push', 1, now() - make_interval(hours => $7), 'updated',
                     '{\"leadScore\": {\"old\": 1, \"new\": 2}}')
             returning id",
        )
        .bind(env)
        .bind(lookup)
        .bind(key)
        .bind(map_id)
        .bind(Uuid::now_v7())
        .bind(dag)
        .bind(hours_ago)
        .fetch_one(self.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn q(text: &str) -> RecordQuery {
    RecordQuery::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_record_is_found_by_key_and_by_map_id_newest_first_in_its_environment_only() {
    let db = db(4).await;
    // Ann: two returns keyed on email, one keyed on id (which names her MAP id only).
    let by_email_old = db.touch("dev", "email", "ann@x.io", Some(7), "a", 30).await;
    let by_id = db.touch("dev", "id", "7", Some(7), "scoring", 20).await;
    let by_email_new = db.touch("dev", "email", "ann@x.io", Some(7), "b", 10).await;
    // Not hers: another lead, the same email in PROD, the same id in PROD.
    db.touch("dev", "email", "bob@x.io", Some(8), "a", 5).await;
    db.touch("prod", "email", "ann@x.io", Some(70), "a", 5)
        .await;
    db.touch("prod", "id", "7", Some(7), "scoring", 5).await;
    let ids = |h: Vec<drover_store::RecordTouch>| h.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let s = &db.store;
    let expected = vec![by_email_new, by_id, by_email_old];
    assert_eq!(
        ids(s
            .record_history("dev", &q("email=ANN@x.io "), 50)
            .await
            .unwrap_or_default()),
        expected
    );
    assert_eq!(
        ids(s
            .record_history("dev", &q("id=7"), 50)
            .await
            .unwrap_or_default()),
        expected
    );
    assert_eq!(
        ids(s
            .record_history("dev", &q("7"), 2)
            .await
            .unwrap_or_default()),
        expected[..2]
    );
    assert_eq!(
        ids(s
            .record_history("dev", &q("email=ann@x.io"), 1)
            .await
            .unwrap_or_default()),
        expected[..1]
    );
    assert!(
        s.record_history("dev", &q("email=nobody@x.io"), 50)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert!(
        s.record_history("qa", &q("email=ann@x.io"), 50)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    let prod = s
        .record_history("prod", &q("email=ann@x.io"), 50)
        .await
        .unwrap_or_default();
    assert_eq!(
        prod.len(),
        1,
        "PROD's Ann is MAP id 70, not PROD's id 7: {prod:?}"
    );
    // Another lookup field, as written.
    let ext = db.touch("dev", "externalId", "X-1", None, "c", 1).await;
    assert_eq!(
        ids(s
            .record_history("dev", &q("externalId=X-1"), 50)
            .await
            .unwrap_or_default()),
        vec![ext]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn touches_older_than_their_retention_are_pruned_and_newer_ones_kept() {
    let db = db(4).await;
    let days = drover_store::RECORD_HISTORY_DAYS;
    db.touch("dev", "email", "old@x.io", Some(1), "a", (days + 1) * 24)
        .await;
    db.touch("dev", "email", "old@x.io", Some(1), "a", (days + 2) * 24)
        .await;
    let kept = db
        .touch("dev", "email", "old@x.io", Some(1), "a", (days - 1) * 24)
        .await;
    assert_eq!(
        db.store
            .prune_record_history(days, 10_000)
            .await
            .unwrap_or(0),
        2
    );
    assert_eq!(
        db.store
            .prune_record_history(days, 10_000)
            .await
            .unwrap_or(9),
        0
    );
    let left = db
        .store
        .record_history("dev", &q("old@x.io"), 50)
        .await
        .unwrap_or_default();
    assert_eq!(left.iter().map(|t| t.id).collect::<Vec<_>>(), vec![kept]);
    db.drop_db().await;
}
