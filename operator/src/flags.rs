//! Command-line values shared by `seedsweep run` and `seedsweep operator`, checked by clap so a bad one is refused
//! with the flag's name before anything starts.

use std::time::Duration;

/// A duration flag in seconds: in (0, 3600].
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("expected seconds, got {text:?}"))?;
    if !(value > 0.0 && value <= 3600.0) {
        return Err(format!("must be in (0, 3600] seconds, got {value}"));
    }
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            seconds("0").unwrap_err(),
            "must be in (0, 3600] seconds, got 0"
        );
        assert!(seconds("3600.5").is_err());
        assert!(seconds("NaN").is_err());
        assert_eq!(
            seconds("soon").unwrap_err(),
            "expected seconds, got \"soon\""
        );
    }
}
