//! Test helpers that act on Redis's side of a node's connection: finding it
//! by the name the node gives it, and cutting it the way a network failure
//! or a Redis restart would. By id only, never every client: other tests
//! share the machine's Redis. Used by this crate's suite and the server's
//! cluster tests.

use redis::aio::MultiplexedConnection;

/// Ids of the connections named `name` in `CLIENT LIST`.
pub async fn client_ids(admin: &mut MultiplexedConnection, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .expect("CLIENT LIST");
    let wanted = format!("name={name}");
    list.lines()
        .filter(|line| line.split(' ').any(|f| f == wanted))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_string)
        })
        .collect()
}

/// Kills every connection named `name` and returns their ids; panics if
/// there is none (a test that cuts nothing proves nothing).
pub async fn kill_clients(admin: &mut MultiplexedConnection, name: &str) -> Vec<String> {
    let ids = client_ids(admin, name).await;
    assert!(!ids.is_empty(), "no redis connection named {name}");
    for id in &ids {
        let _: () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(admin)
            .await
            .expect("CLIENT KILL");
    }
    ids
}
