//! Everything the two seeds of the paper control, as pure functions so tests can check each seed's reach directly.
//!
//! Both use ChaCha8 rather than torch's generator: the data order and the head's initial weights must not depend on
//! the device, on torch's version, or on what else consumed torch's global generator before.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// ChaCha streams keep the draws of different purposes independent under the same seed.
const STREAM_HEAD: u64 = 1 << 32;
const STREAM_POOLER: u64 = (1 << 32) + 1;

/// A uniform integer in `0..n` without modulo bias (rejection sampling).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return x % n;
        }
    }
}

/// The order in which the training examples `0..n` are visited in `epoch` (0-based), fixed by the DO seed alone.
/// Each epoch has its own ChaCha stream, so an epoch's order does not depend on how many were drawn before it.
pub fn epoch_order(do_seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(do_seed);
    rng.set_stream(epoch);
    let mut order: Vec<usize> = (0..n).collect();
    // Fisher–Yates, spelled out so the order cannot change with a dependency's shuffle implementation.
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// `n` draws from normal(0, std) (Box–Muller), as f32 like the model's parameters.
fn normals(seed: u64, stream: u64, n: usize, std: f64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // 53 random bits mapped to (0, 1]; the open lower end keeps ln() finite.
        let u1 = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        out.push((std * r * theta.cos()) as f32);
        out.push((std * r * theta.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// The classification head's initial weight, row-major `[num_labels, hidden]`, drawn as HF's `_init_weights` does
/// (normal(0, initializer_range); the bias starts at zero). Fixed by the WI seed alone.
pub fn head_init(wi_seed: u64, num_labels: usize, hidden: usize, std: f64) -> Vec<f32> {
    normals(wi_seed, STREAM_HEAD, num_labels * hidden, std)
}

/// The pooler's initial weight `[hidden, hidden]` for checkpoints that do not ship one. Fixed by the WI seed.
pub fn pooler_init(wi_seed: u64, hidden: usize, std: f64) -> Vec<f32> {
    normals(wi_seed, STREAM_POOLER, hidden * hidden, std)
}

/// FNV-1a over the values, so runs can report which order/init they used without dumping it.
pub fn digest<T: Copy, F: Fn(T) -> u64>(values: &[T], bits: F) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &v in values {
        for byte in bits(v).to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The seed of the dropout masks of optimizer step `step` (0-based): [`crate::dropout`]'s on the CPU, torch's
/// generator's on CUDA. Reseeding every step makes the masks a function of (seed, step) alone, so a run resumed from
/// a checkpoint draws the same masks as one that never stopped (tch cannot save torch's generator's state).
/// SplitMix64's finalizer spreads neighbouring steps over unrelated seeds.
pub fn dropout_step_seed(seed: u64, step: u64) -> i64 {
    let mut z = seed.wrapping_add(step.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    // torch takes an i64; the bits are what matter.
    (z ^ (z >> 31)) as i64
}

/// How the dropout seed is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DropoutSeedFrom {
    /// The paper's code reseeded torch's generator with the DO seed before training, so dropout followed it.
    Do,
    /// The WI seed.
    Wi,
    /// No seed: dropout masks come from `--dropout-seed` or, without one, from the clock (not reproducible).
    None,
}

/// The seed dropout masks derive from: an explicit `--dropout-seed` wins, then `--dropout-seed-from`.
pub fn dropout_seed(
    from: DropoutSeedFrom,
    explicit: Option<u64>,
    wi_seed: u64,
    do_seed: u64,
) -> Option<u64> {
    explicit.or(match from {
        DropoutSeedFrom::Do => Some(do_seed),
        DropoutSeedFrom::Wi => Some(wi_seed),
        DropoutSeedFrom::None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_permutation_fixed_by_seed_and_epoch() {
        let a = epoch_order(7, 0, 100);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(7, 0, 100));
        assert_ne!(
            a,
            epoch_order(8, 0, 100),
            "another DO seed must give another order"
        );
        assert_ne!(
            a,
            epoch_order(7, 1, 100),
            "epochs must be shuffled independently"
        );
    }

    #[test]
    fn head_init_has_the_requested_spread_and_depends_on_the_wi_seed_only() {
        let w = head_init(3, 2, 384, 0.02);
        assert_eq!(w.len(), 768);
        assert_eq!(w, head_init(3, 2, 384, 0.02));
        assert_ne!(w, head_init(4, 2, 384, 0.02));
        let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / w.len() as f64;
        let var = w
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / w.len() as f64;
        assert!(mean.abs() < 0.004, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 0.002, "std {}", var.sqrt());
        assert_ne!(
            pooler_init(3, 2, 0.02)[..],
            w[..4],
            "pooler and head draw from separate streams"
        );
    }

    #[test]
    fn dropout_step_seeds_differ_by_step_and_seed() {
        let seeds: std::collections::HashSet<i64> = (0..1000)
            .flat_map(|step| [dropout_step_seed(1, step), dropout_step_seed(2, step)])
            .collect();
        assert_eq!(seeds.len(), 2000);
        assert_eq!(dropout_step_seed(5, 7), dropout_step_seed(5, 7));
    }

    #[test]
    fn dropout_seed_follows_the_chosen_source() {
        assert_eq!(dropout_seed(DropoutSeedFrom::Do, None, 1, 2), Some(2));
        assert_eq!(dropout_seed(DropoutSeedFrom::Wi, None, 1, 2), Some(1));
        assert_eq!(dropout_seed(DropoutSeedFrom::None, None, 1, 2), None);
        assert_eq!(dropout_seed(DropoutSeedFrom::Do, Some(9), 1, 2), Some(9));
    }
}
