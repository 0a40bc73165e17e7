//! Turning one fuzz input into a byte stream plus the places to cut it.

/// Splits `data` into `(cuts, stream)`: the first byte says how many of the following bytes
/// are chunk lengths (at most 16); the rest is the stream. A length of 0 means 1.
pub fn cuts_and_stream(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(n % 17).min(rest.len());
    let (lens, stream) = rest.split_at(n);
    (
        lens.iter().map(|&l| usize::from(l).max(1)).collect(),
        stream,
    )
}

/// The chunks of `stream` cut at the lengths in `cuts` (cycled), the last one holding the rest.
pub fn chunks<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let len = match cuts.get(i % cuts.len().max(1)) {
            Some(&l) => l.min(rest.len()),
            None => rest.len(),
        };
        let (head, tail) = rest.split_at(len);
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}
