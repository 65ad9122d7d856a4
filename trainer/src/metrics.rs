//! Binary classification metrics as GLUE (scikit-learn) computes them, positive class 1.

use seedsweep_crds::Metrics;

pub fn compute(predictions: &[i64], labels: &[i64]) -> Metrics {
    assert_eq!(predictions.len(), labels.len(), "one prediction per label");
    let (mut tp, mut tn, mut fp, mut fun) = (0f64, 0f64, 0f64, 0f64);
    for (&p, &l) in predictions.iter().zip(labels) {
        match (p == 1, l == 1) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fun += 1.0,
        }
    }
    let n = tp + tn + fp + fun;
    let accuracy = if n > 0.0 { (tp + tn) / n } else { 0.0 };
    // scikit-learn's zero_division default: an undefined F1 or MCC counts as 0.
    let f1 = if tp > 0.0 {
        2.0 * tp / (2.0 * tp + fp + fun)
    } else {
        0.0
    };
    let denominator = ((tp + fp) * (tp + fun) * (tn + fp) * (tn + fun)).sqrt();
    let mcc = if denominator > 0.0 {
        (tp * tn - fp * fun) / denominator
    } else {
        0.0
    };
    Metrics {
        accuracy,
        f1,
        mcc,
        acc_and_f1: (accuracy + f1) / 2.0,
    }
}

/// The metrics of always predicting the dev set's most frequent label (ties go to label 0, as scikit-learn's
/// `DummyClassifier(strategy="most_frequent")` does).
pub fn majority_baseline(labels: &[i64]) -> Metrics {
    let ones = labels.iter().filter(|&&l| l == 1).count();
    let majority = i64::from(ones > labels.len() - ones);
    compute(&vec![majority; labels.len()], labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scikit_learn() {
        // sklearn: accuracy 0.625, f1 0.6666..., mcc 0.2581988897471611 for this confusion (tp 3, tn 2, fp 2, fn 1).
        let m = compute(&[1, 1, 1, 1, 1, 0, 0, 0], &[1, 1, 1, 0, 0, 1, 0, 0]);
        assert!((m.accuracy - 0.625).abs() < 1e-12);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.mcc - 0.2581988897471611).abs() < 1e-12);
        assert!((m.acc_and_f1 - (0.625 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn majority_baseline_of_mrpc_dev() {
        // MRPC dev: 279 positives, 129 negatives (SOURCES.md).
        let labels: Vec<i64> = (0..408).map(|i| i64::from(i < 279)).collect();
        let m = majority_baseline(&labels);
        assert!((m.accuracy - 279.0 / 408.0).abs() < 1e-12);
        assert!((m.f1 - 2.0 * 279.0 / (2.0 * 279.0 + 129.0)).abs() < 1e-12);
        assert_eq!(m.mcc, 0.0);
        let negatives = majority_baseline(&[0, 0, 1]);
        assert_eq!((negatives.f1, negatives.mcc), (0.0, 0.0));
    }
}
