//! Inputs and a tolerance check shared by the kernel modules' unit tests.

/// `len` deterministic values in [−1, 1], different for each `seed`.
pub(super) fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i + seed) * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// Panics unless `got` and `want` have the same length and agree element by element within
/// 1e-4 relative (`|a − b| ≤ 1e-4·(1 + |b|)`), the tolerance every fast path is held to.
pub(super) fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (j, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{what}, element {j}: got {a}, reference {b}"
        );
    }
}
