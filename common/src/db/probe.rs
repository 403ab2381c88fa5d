//! [`first_existing`]: several "is there such a row?" questions in one statement, for handlers that
//! must know what was decided about an order before acting on it (payment's tombstone and
//! existing payment, inventory's reservations and withdrawal). Each question asked on its own
//! would be a statement, and so (sqlx on SQLite) a hand-off to the connection's thread and back.

use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Alias, Expr, SelectStatement, UnionType},
};

/// The label of the first of `probes` (`label`, a `SELECT` with its `FROM` and `WHERE` and no
/// columns) that finds a row, asked in one `UNION ALL` statement; `None` if none does. Labels are
/// written into the SQL: they must be short lowercase words (checked).
pub async fn first_existing<C: ConnectionTrait>(
    conn: &C,
    probes: Vec<(&'static str, SelectStatement)>,
) -> Result<Option<&'static str>, DbErr> {
    let labels: Vec<&'static str> = probes.iter().map(|(label, _)| *label).collect();
    let mut union: Option<SelectStatement> = None;
    for (label, mut select) in probes {
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
        return Ok(None);
    };
    let found = conn
        .query_all_raw(conn.get_database_backend().build(&union))
        .await?
        .into_iter()
        .map(|row| row.try_get::<String>("", "probe"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(labels
        .into_iter()
        .find(|label| found.iter().any(|f| f == label)))
}
