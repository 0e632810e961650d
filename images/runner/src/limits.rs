//! The limit line, JoyOI's `user_ms [total_ms [vm_mb]]`, parsed into [`Limits`].
//!
//! `user_ms` limits the command's user CPU time; `total_ms` its wall-clock time, twice
//! `user_ms` when absent; `vm_mb` its address space: `0` for none (what JoyOI sends for
//! Java, Python and .NET, whose runtimes reserve far more than they use), a number of MiB,
//! or `-1` / absent for the default, the memory ceiling (see `memory`).

use std::fmt;
use std::time::Duration;

/// The limits the command runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// User CPU time of the command's process group.
    pub user_time: Duration,
    /// Wall-clock time from start to end.
    pub total_time: Duration,
    pub address_space: AddressSpace,
}

/// The RLIMIT_AS the command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSpace {
    /// The memory ceiling: the smaller of 1 GiB and the container's memory limit, less a
    /// reserve for the runner.
    Default,
    Unlimited,
    Mib(u64),
}

/// Why a limit line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    Empty,
    TooManyNumbers(usize),
    BadUserTime(String),
    BadTotalTime(String),
    BadAddressSpace(String),
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "it is empty"),
            Self::TooManyNumbers(count) => write!(f, "it has {count} numbers, at most 3 are understood"),
            Self::BadUserTime(word) => {
                write!(f, "user_ms must be a positive whole number of milliseconds, got {word:?}")
            }
            Self::BadTotalTime(word) => {
                write!(f, "total_ms must be a positive whole number of milliseconds, got {word:?}")
            }
            Self::BadAddressSpace(word) => write!(
                f,
                "vm_mb must be -1 (the default), 0 (no limit) or a positive whole number of MiB, got {word:?}"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// Parses `user_ms [total_ms [vm_mb]]`, the numbers separated by whitespace.
pub fn parse_limit_line(line: &str) -> Result<Limits, LimitError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() > 3 {
        return Err(LimitError::TooManyNumbers(words.len()));
    }
    let (user, total, vm) = match words[..] {
        [] => return Err(LimitError::Empty),
        [user] => (user, None, None),
        [user, total] => (user, Some(total), None),
        [user, total, vm] => (user, Some(total), Some(vm)),
        // Longer lines were refused above.
        _ => return Err(LimitError::TooManyNumbers(words.len())),
    };
    let user_ms = positive_ms(user).ok_or_else(|| LimitError::BadUserTime(user.to_string()))?;
    let total_ms = match total {
        None => user_ms.saturating_mul(2),
        Some(total) => positive_ms(total).ok_or_else(|| LimitError::BadTotalTime(total.to_string()))?,
    };
    let address_space = match vm.map(|vm| (vm, vm.parse::<i64>())) {
        None | Some((_, Ok(-1))) => AddressSpace::Default,
        Some((_, Ok(0))) => AddressSpace::Unlimited,
        Some((_, Ok(mib))) if mib > 0 => AddressSpace::Mib(mib.unsigned_abs()),
        Some((vm, _)) => return Err(LimitError::BadAddressSpace(vm.to_string())),
    };
    Ok(Limits { user_time: Duration::from_millis(user_ms), total_time: Duration::from_millis(total_ms), address_space })
}

fn positive_ms(word: &str) -> Option<u64> {
    word.parse::<u64>().ok().filter(|&ms| ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, user_ms: u64, total_ms: u64, address_space: AddressSpace) {
        let limits = parse_limit_line(line).unwrap_or_else(|err| panic!("{line:?} should parse, got error: {err}"));
        let expected = Limits {
            user_time: Duration::from_millis(user_ms),
            total_time: Duration::from_millis(total_ms),
            address_space,
        };
        assert_eq!(limits, expected, "parsing {line:?}");
    }

    #[test]
    fn parses_joyoi_limit_lines() {
        check("5000", 5000, 10000, AddressSpace::Default);
        check(" 250 ", 250, 500, AddressSpace::Default);
        check("5000 5000", 5000, 5000, AddressSpace::Default);
        check("1000 2000", 1000, 2000, AddressSpace::Default);
        check("1000 2000 0", 1000, 2000, AddressSpace::Unlimited);
        check("5000 15000 0", 5000, 15000, AddressSpace::Unlimited);
        check("1000\t2000  -1", 1000, 2000, AddressSpace::Default);
        check("1000 500 64", 1000, 500, AddressSpace::Mib(64));
    }

    #[test]
    fn rejects_bad_limit_lines() {
        for (line, expected) in [
            ("", LimitError::Empty),
            ("  ", LimitError::Empty),
            ("0", LimitError::BadUserTime("0".into())),
            ("-5", LimitError::BadUserTime("-5".into())),
            ("1.5", LimitError::BadUserTime("1.5".into())),
            ("1s", LimitError::BadUserTime("1s".into())),
            ("abc 1000", LimitError::BadUserTime("abc".into())),
            ("1000 0", LimitError::BadTotalTime("0".into())),
            ("1000 -1", LimitError::BadTotalTime("-1".into())),
            ("1000 2000 -2", LimitError::BadAddressSpace("-2".into())),
            ("1000 2000 64M", LimitError::BadAddressSpace("64M".into())),
            ("1000 2000 0 7", LimitError::TooManyNumbers(4)),
        ] {
            assert_eq!(parse_limit_line(line), Err(expected), "parsing {line:?}");
        }
    }

    #[test]
    fn a_huge_user_limit_does_not_overflow_the_default_total() {
        let limits = parse_limit_line(&u64::MAX.to_string()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(limits.total_time, Duration::from_millis(u64::MAX));
    }
}
