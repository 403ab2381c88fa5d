//! [`which_exist`]: several "is there such a row?" questions in one statement, for handlers that
//! must know what was decided about an order before acting on it (payment's tombstone and
//! existing payment, inventory's reservations and withdrawal). Each question asked on its own
//! would be a statement, and so (sqlx on SQLite) a hand-off to the connection's thread and back.

use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Alias, Expr, SelectStatement, UnionType},
};

/// The labels of the `probes` (`label`, a `SELECT` with its `FROM` and `WHERE` and no columns)
/// that find at least one row, in the order of `probes`, each once: one `UNION ALL` statement.
/// Labels are written into the SQL: they must be short lowercase words (checked).
pub async fn which_exist<C: ConnectionTrait>(
    conn: &C,
    probes: Vec<(&'static str, SelectStatement)>,
) -> Result<Vec<&'static str>, DbErr> {
    let mut union: Option<SelectStatement> = None;
    for (label, mut select) in probes.iter().cloned() {
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(DbErr::Custom(format!(
                "probe label {label:?} is not a word"
            )));
        }
        select.expr_as(Expr::cust(format!("'{label}'")), Alias::new("probe"));
        match &mut union {
            None => union = Some(select),
            Some(union) => {
                union.union(UnionType::All, select);
            }
        }
    }
    let Some(union) = union else {
        return Ok(Vec::new());
    };
    let rows = conn
        .query_all_raw(conn.get_database_backend().build(&union))
        .await?;
    let mut found = Vec::new();
    for row in rows {
        let label: String = row.try_get("", "probe")?;
        found.push(label);
    }
    Ok(probes
        .iter()
        .map(|(label, _)| *label)
        .filter(|label| found.iter().any(|f| f == label))
        .collect())
}
