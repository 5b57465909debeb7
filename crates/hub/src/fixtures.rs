//! Documents built the way an editor builds them, for the unit tests and the
//! hostile-input harness: what ordinary traffic looks like.

use yrs::{
    Array, Doc, Map, MapPrelim, Text, Transact, Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim,
};

/// An ordinary editing session by `client`, one update per transaction:
/// text with formatting, an embed and deletions, a map, an array, XML
/// paragraphs. Returns the document too, to compare against.
pub(crate) fn editing_session(client: u64) -> (Doc, Vec<Vec<u8>>) {
    let doc = Doc::with_client_id(client);
    let text = doc.get_or_insert_text("text");
    let frag = doc.get_or_insert_xml_fragment("default");
    let map = doc.get_or_insert_map("m");
    let arr = doc.get_or_insert_array("a");
    let mut updates = Vec::new();
    let mut step = |f: &dyn Fn(&mut yrs::TransactionMut)| {
        let mut txn = doc.transact_mut();
        f(&mut txn);
        updates.push(txn.encode_update_v1());
    };
    step(&|t| text.insert(t, 0, "hello wörld 😀 and more"));
    step(&|t| text.remove_range(t, 2, 3));
    step(&|t| {
        text.format(
            t,
            1,
            4,
            yrs::types::Attrs::from([("bold".into(), yrs::Any::Bool(true))]),
        )
    });
    step(&|t| {
        text.insert_embed(t, 2, yrs::Any::from(vec![1.5, 2.0]));
    });
    step(&|t| {
        map.insert(t, "k", yrs::Any::from(vec![1.5, 2.0]));
        map.insert(t, "nested", MapPrelim::default());
        map.insert(t, "bytes", yrs::Any::Buffer(vec![1, 2, 3].into()));
    });
    step(&|t| {
        arr.insert_range(t, 0, [1, 2, 3]);
        arr.insert(t, 1, "s");
        arr.remove_range(t, 0, 2);
    });
    step(&|t| {
        let p = frag.insert(t, 0, XmlElementPrelim::empty("paragraph"));
        p.insert_attribute(t, "level", yrs::Any::from(2));
        let tx = p.insert(t, 0, XmlTextPrelim::new("para"));
        tx.insert(t, 4, "graph");
    });
    (doc, updates)
}
