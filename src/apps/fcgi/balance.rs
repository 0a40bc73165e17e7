//! Which backend gets the next try: least outstanding requests (ties rotate), or the ring
//! position of a hashed param; ejected and already-tried backends only as a last resort.

/// One backend as the chooser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Out of rotation after failures (until a probe brings it back).
    pub ejected: bool,
    /// Already tried for this request.
    pub tried: bool,
    /// Requests in flight on it now.
    pub in_flight: u64,
}

/// Picks a backend: `start` is the rotation point (least-outstanding mode) or the hash of
/// the sticky param (`hashed`). Prefers healthy untried backends, then ejected untried ones
/// (every backend ejected: trying one beats failing at once); `None` once all were tried.
pub fn pick(views: &[View], start: usize, hashed: bool) -> Option<usize> {
    let n = views.len();
    if n == 0 {
        return None;
    }
    let ring = (0..n).map(|i| (start % n + i) % n);
    for healthy in [true, false] {
        let ok = |i: &usize| !views[*i].tried && views[*i].ejected != healthy;
        let found = if hashed {
            ring.clone().find(ok)
        } else {
            ring.clone().filter(ok).min_by_key(|&i| views[i].in_flight)
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// FNV-1a of a param value, for hash-by-param stickiness.
pub fn hash(bytes: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ejected: bool, tried: bool, in_flight: u64) -> View {
        View {
            ejected,
            tried,
            in_flight,
        }
    }

    #[test]
    fn least_outstanding_with_rotating_ties() {
        let views = [v(false, false, 2), v(false, false, 1), v(false, false, 1)];
        assert_eq!(pick(&views, 0, false), Some(1));
        assert_eq!(pick(&views, 2, false), Some(2));
        let idle = [v(false, false, 0); 3];
        let picks: Vec<_> = (0..3).map(|s| pick(&idle, s, false)).collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn ejected_and_tried_are_last_resorts() {
        let views = [v(true, false, 0), v(false, true, 0), v(false, false, 9)];
        assert_eq!(pick(&views, 0, false), Some(2));
        let views = [v(true, false, 0), v(false, true, 0)];
        assert_eq!(pick(&views, 1, false), Some(0));
        let views = [v(false, true, 0), v(true, true, 0)];
        assert_eq!(pick(&views, 0, false), None);
        assert_eq!(pick(&[], 0, false), None);
    }

    #[test]
    fn hashing_is_sticky_and_skips_to_the_next_healthy() {
        let views = [v(false, false, 5), v(false, false, 0), v(false, false, 0)];
        assert_eq!(pick(&views, 3, true), Some(0));
        let views = [v(true, false, 0), v(false, false, 0), v(false, false, 0)];
        assert_eq!(pick(&views, 3, true), Some(1));
        assert_eq!(hash(b"10.0.0.1"), hash(b"10.0.0.1"));
        assert_ne!(hash(b"10.0.0.1"), hash(b"10.0.0.2"));
    }
}
