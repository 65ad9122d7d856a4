//! Planning a sweep: which (WI, DO) seed pairs, under which names, in which launch order, and how many trials each
//! rung keeps. Pure and deterministic: the same manifest always gives the same plan, on any machine.

use seedsweep_crds::sweep::{DiscardMode, SeedList, SeedPair, SeedSweepSpec};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedTrial {
    /// Position in the launch order; also the tie-breaker between equal scores (earlier wins).
    pub index: usize,
    pub name: String,
    pub weight_init: u64,
    pub data_order: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rung {
    pub at_fraction: f64,
    /// Trials this rung keeps: of all trials at the first rung, of the previous rung's survivors after that.
    pub keep: usize,
    /// The fraction used by `asynchronous` mode: `keepFraction`, or `keep` over the trials the rung ranks.
    pub keep_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub trials: Vec<PlannedTrial>,
    pub rungs: Vec<Rung>,
    pub mode: DiscardMode,
    pub min_observations: usize,
}

/// The name of a trial, and of its Job: `<sweep>-w<WI>-d<DO>`.
pub fn trial_name(sweep: &str, pair: SeedPair) -> String {
    seedsweep_crds::sweep::trial_name(sweep, pair.weight_init, pair.data_order)
}

/// Plans a validated spec (the operator crate's `manifest::validate` checks one).
pub fn plan(sweep: &str, spec: &SeedSweepSpec) -> Plan {
    let pairs = launch_order(spec);
    let trials = pairs
        .into_iter()
        .enumerate()
        .map(|(index, p)| PlannedTrial {
            index,
            name: trial_name(sweep, p),
            weight_init: p.weight_init,
            data_order: p.data_order,
        })
        .collect::<Vec<_>>();
    let mut ranked = trials.len();
    let mut rungs = Vec::new();
    let (mode, min_observations) = match &spec.early_discard {
        Some(ed) => {
            for r in &ed.rungs {
                let keep = match (r.keep_count, r.keep_fraction) {
                    (Some(k), _) => (k as usize).min(ranked),
                    (None, Some(q)) => keep_of(ranked, q),
                    (None, None) => ranked,
                };
                let keep_fraction = r
                    .keep_fraction
                    .unwrap_or(keep as f64 / ranked.max(1) as f64);
                rungs.push(Rung {
                    at_fraction: r.at_fraction,
                    keep,
                    keep_fraction,
                });
                ranked = keep;
            }
            (ed.mode, ed.min_observations as usize)
        }
        None => (DiscardMode::Exact, 1),
    };
    Plan {
        trials,
        rungs,
        mode,
        min_observations,
    }
}

/// The seed pairs in launch order. Every prefix of the order is as balanced as possible across WI values and across
/// DO values, so a sweep stopped half-way still supports the WI/DO analysis.
pub fn launch_order(spec: &SeedSweepSpec) -> Vec<SeedPair> {
    let seeds = &spec.seeds;
    if let Some(pairs) = &seeds.pairs {
        return balanced_greedy(pairs.clone());
    }
    let wi = seeds
        .weight_init
        .as_ref()
        .map(seed_values)
        .unwrap_or_default();
    let dor = seeds
        .data_order
        .as_ref()
        .map(seed_values)
        .unwrap_or_default();
    match seeds.sample {
        Some(sample) => balanced_greedy(sample_grid(&wi, &dor, sample.count as usize, sample.seed)),
        None => grid_order(&wi, &dor),
    }
}

/// The full W × D grid in an order whose every prefix has WI counts and DO counts that differ by at most one.
///
/// Step k takes WI `k mod W` and DO `(k + b) mod D`, where `b = k div lcm(W, D)`. Within a block of lcm(W, D) steps
/// both indices cycle, so prefixes stay balanced; block b covers exactly the cells with `(d − w) ≡ b (mod gcd)`, so
/// the gcd(W, D) blocks together cover the grid once.
pub fn grid_order(wi: &[u64], dor: &[u64]) -> Vec<SeedPair> {
    let (w, d) = (wi.len(), dor.len());
    if w == 0 || d == 0 {
        return Vec::new();
    }
    let lcm = w / gcd(w, d) * d;
    (0..w * d)
        .map(|k| {
            let block = k / lcm;
            SeedPair {
                weight_init: wi[k % w],
                data_order: dor[(k + block) % d],
            }
        })
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Orders an arbitrary set of pairs greedily: each step takes the remaining pair whose WI and DO values have been
/// used least so far (ties: the earlier pair in the input).
fn balanced_greedy(pairs: Vec<SeedPair>) -> Vec<SeedPair> {
    let mut remaining = pairs;
    let mut used_wi: BTreeMap<u64, usize> = BTreeMap::new();
    let mut used_do: BTreeMap<u64, usize> = BTreeMap::new();
    let mut order = Vec::with_capacity(remaining.len());
    while !remaining.is_empty() {
        let (pos, _) = remaining
            .iter()
            .enumerate()
            .min_by_key(|(i, p)| {
                let a = used_wi.get(&p.weight_init).copied().unwrap_or(0);
                let b = used_do.get(&p.data_order).copied().unwrap_or(0);
                (a.max(b), a + b, *i)
            })
            .expect("remaining is not empty");
        let p = remaining.remove(pos);
        *used_wi.entry(p.weight_init).or_default() += 1;
        *used_do.entry(p.data_order).or_default() += 1;
        order.push(p);
    }
    order
}

/// Draws `count` distinct cells of the grid uniformly, reproducibly from `seed` (partial Fisher–Yates over cell
/// indices). The generator is SplitMix64, written out here so that a sample never changes with a dependency's
/// version.
fn sample_grid(wi: &[u64], dor: &[u64], count: usize, seed: u64) -> Vec<SeedPair> {
    let n = wi.len() * dor.len();
    let count = count.min(n);
    let mut rng = SplitMix64(seed);
    // Sparse Fisher–Yates: only touched positions are stored, so sampling from a huge grid stays cheap.
    let mut swapped: BTreeMap<usize, usize> = BTreeMap::new();
    let mut picked = Vec::with_capacity(count);
    for i in 0..count {
        let j = i + rng.below((n - i) as u64) as usize;
        let at_j = swapped.get(&j).copied().unwrap_or(j);
        let at_i = swapped.get(&i).copied().unwrap_or(i);
        swapped.insert(j, at_i);
        picked.push(at_j);
    }
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|c| SeedPair {
            weight_init: wi[c / dor.len()],
            data_order: dor[c % dor.len()],
        })
        .collect()
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift with rejection, so no modulo bias).
    fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// Resolves a seed list (already validated) into its values.
pub fn seed_values(list: &SeedList) -> Vec<u64> {
    match (&list.values, list.start, list.count) {
        (Some(values), _, _) => values.clone(),
        (None, Some(start), Some(count)) => (0..u64::from(count))
            .map(|i| start.saturating_add(i))
            .collect(),
        _ => Vec::new(),
    }
}

/// Trials kept from `n` ranked ones at `keep_fraction`: rounded up, at least one. The tolerance keeps
/// `625 × 0.2` at 125 although the product is 125.00000000000001 in floating point.
pub fn keep_of(n: usize, keep_fraction: f64) -> usize {
    ((n as f64 * keep_fraction - 1e-9).ceil() as usize).clamp(1, n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn spread<F: Fn(&SeedPair) -> u64>(prefix: &[SeedPair], key: F, values: &[u64]) -> usize {
        let mut counts: BTreeMap<u64, usize> = values.iter().map(|v| (*v, 0)).collect();
        for p in prefix {
            *counts.get_mut(&key(p)).unwrap() += 1;
        }
        counts.values().max().unwrap() - counts.values().min().unwrap()
    }

    proptest! {
        #[test]
        fn grid_order_covers_the_grid_once_with_balanced_prefixes(w in 1usize..12, d in 1usize..12, offset in 0u64..1000) {
            let wi: Vec<u64> = (0..w as u64).map(|x| x * 7 + offset).collect();
            let dor: Vec<u64> = (0..d as u64).map(|x| x * 3 + offset).collect();
            let order = grid_order(&wi, &dor);
            let distinct: BTreeSet<_> = order.iter().copied().collect();
            prop_assert_eq!(order.len(), w * d);
            prop_assert_eq!(distinct.len(), w * d);
            for len in 1..=order.len() {
                prop_assert!(spread(&order[..len], |p| p.weight_init, &wi) <= 1, "WI unbalanced at prefix {}", len);
                prop_assert!(spread(&order[..len], |p| p.data_order, &dor) <= 1, "DO unbalanced at prefix {}", len);
            }
        }

        #[test]
        fn samples_are_distinct_reproducible_grid_cells(w in 1usize..30, d in 1usize..30, k in 1usize..50, seed: u64) {
            let wi: Vec<u64> = (0..w as u64).collect();
            let dor: Vec<u64> = (100..100 + d as u64).collect();
            let a = sample_grid(&wi, &dor, k, seed);
            let b = sample_grid(&wi, &dor, k, seed);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.len(), k.min(w * d));
            let distinct: BTreeSet<_> = a.iter().copied().collect();
            prop_assert_eq!(distinct.len(), a.len());
            prop_assert!(a.iter().all(|p| wi.contains(&p.weight_init) && dor.contains(&p.data_order)));
        }
    }

    #[test]
    fn sampling_is_roughly_uniform() {
        // 3 × 3 grid, draw 1 cell 9000 times with different seeds: every cell near 1000.
        let wi = [1, 2, 3];
        let dor = [1, 2, 3];
        let mut hits: BTreeMap<SeedPair, usize> = BTreeMap::new();
        for seed in 0..9000 {
            *hits.entry(sample_grid(&wi, &dor, 1, seed)[0]).or_default() += 1;
        }
        assert_eq!(hits.len(), 9);
        assert!(hits.values().all(|&n| (850..1150).contains(&n)), "{hits:?}");
    }

    #[test]
    fn greedy_order_balances_an_explicit_list() {
        // Listed WI-major, as a user would type them; the launch order interleaves.
        let pairs: Vec<SeedPair> = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
            .map(|(a, b)| SeedPair {
                weight_init: a,
                data_order: b,
            })
            .to_vec();
        let order = balanced_greedy(pairs);
        assert_eq!(
            order[0],
            SeedPair {
                weight_init: 1,
                data_order: 1
            }
        );
        assert_eq!(
            order[1],
            SeedPair {
                weight_init: 2,
                data_order: 2
            }
        );
        assert_eq!(spread(&order[..4], |p| p.weight_init, &[1, 2]), 0);
    }

    #[test]
    fn trial_names_follow_the_scheme() {
        assert_eq!(
            trial_name(
                "mrpc",
                SeedPair {
                    weight_init: 3,
                    data_order: 17
                }
            ),
            "mrpc-w3-d17"
        );
    }
}
