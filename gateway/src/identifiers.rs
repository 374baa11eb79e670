//! Finnish identifiers and the local date-time of Epic exports, as pure checks.
//!
//! These back the custom JSON Schema formats of the profiles (`fi-hetu`, `fi-ytunnus`, `oid`,
//! `fi-local-date-time`). They are plain functions over `&str` so that the profile validator,
//! the mapping engine and the tests share one definition of "valid", and they allocate nothing:
//! they run on every record.

/// Check characters of the personal identity code, indexed by `DDMMYYNNN mod 31`.
const HETU_CHECK_CHARS: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";

/// The century a hetu century sign stands for, or `None` for a character that is not one.
///
/// Since 1 January 2023 the 1900s also use `Y X W V U` and the 2000s `B C D E F`; the sign is
/// part of the identity (two people may differ only by it), so it is never normalised away.
#[must_use]
pub fn hetu_century(sign: u8) -> Option<u16> {
    match sign {
        b'+' => Some(1800),
        b'-' | b'Y' | b'X' | b'W' | b'V' | b'U' => Some(1900),
        b'A' | b'B' | b'C' | b'D' | b'E' | b'F' => Some(2000),
        _ => None,
    }
}

/// Why a hetu is not valid: used in messages, so each names the part that is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HetuError {
    /// Not eleven ASCII characters.
    Length,
    /// The six date digits are not digits or not a real calendar date.
    Date,
    /// The seventh character is not a century sign.
    CenturySign,
    /// The individual number is not three digits in 002–999.
    IndividualNumber,
    /// The check character does not match.
    CheckCharacter,
}

impl HetuError {
    /// A plain sentence for an issue message.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Length => "a personal identity code has 11 characters (DDMMYYCNNNQ)",
            Self::Date => "the first six characters are not a real calendar date (DDMMYY)",
            Self::CenturySign => {
                "the seventh character is not a century sign (+, -, Y, X, W, V, U, A, B, C, D, E, F)"
            }
            Self::IndividualNumber => "the individual number must be 002–999",
            Self::CheckCharacter => "the check character does not match",
        }
    }
}

/// Checks a Finnish personal identity code (henkilötunnus).
///
/// # Errors
/// Names the first part of the code that is wrong.
pub fn check_hetu(value: &str) -> Result<(), HetuError> {
    let bytes = value.as_bytes();
    if bytes.len() != 11 || !value.is_ascii() {
        return Err(HetuError::Length);
    }
    let day = two_digits(bytes[0], bytes[1]).ok_or(HetuError::Date)?;
    let month = two_digits(bytes[2], bytes[3]).ok_or(HetuError::Date)?;
    let year2 = two_digits(bytes[4], bytes[5]).ok_or(HetuError::Date)?;
    let century = hetu_century(bytes[6]).ok_or(HetuError::CenturySign)?;
    if !is_calendar_date(century + u16::from(year2), month, day) {
        return Err(HetuError::Date);
    }
    let individual = three_digits(&bytes[7..10]).ok_or(HetuError::IndividualNumber)?;
    if individual < 2 {
        return Err(HetuError::IndividualNumber);
    }
    let number = u32::from(day) * 10_000_000
        + u32::from(month) * 100_000
        + u32::from(year2) * 1_000
        + u32::from(individual);
    let expected = HETU_CHECK_CHARS[(number % 31) as usize];
    if bytes[10] != expected {
        return Err(HetuError::CheckCharacter);
    }
    Ok(())
}

/// `true` when `value` is a valid hetu; the `fi-hetu` format.
#[must_use]
pub fn is_hetu(value: &str) -> bool {
    check_hetu(value).is_ok()
}

/// `true` when `value` is a valid Y-tunnus (`NNNNNNN-C`); the `fi-ytunnus` format.
///
/// Weights 7 9 10 5 8 4 2; r = sum mod 11; r = 0 gives check digit 0, r = 1 is never issued
/// (rejected, unlike some libraries that map it to 0), otherwise the check digit is 11 − r.
#[must_use]
pub fn is_ytunnus(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() != 9 || bytes[7] != b'-' {
        return false;
    }
    const WEIGHTS: [u32; 7] = [7, 9, 10, 5, 8, 4, 2];
    let mut sum = 0;
    for (byte, weight) in bytes[..7].iter().zip(WEIGHTS) {
        if !byte.is_ascii_digit() {
            return false;
        }
        sum += u32::from(byte - b'0') * weight;
    }
    let check = match sum % 11 {
        0 => 0,
        1 => return false,
        r => 11 - r,
    };
    bytes[8].is_ascii_digit() && u32::from(bytes[8] - b'0') == check
}

/// The custodian's OID root for a Y-tunnus: `1.2.246.10.<digits without the dash, leading
/// zeros dropped>` (`0201256-6` → `1.2.246.10.2012566`). `None` for an invalid Y-tunnus.
#[must_use]
pub fn custodian_oid_root(ytunnus: &str) -> Option<String> {
    const ROOT: &str = "1.2.246.10.";
    if !is_ytunnus(ytunnus) {
        return None;
    }
    // Written into one buffer of the right size: this runs for every record mapped forward,
    // and collecting the digits and then formatting cost several allocations.
    let mut oid = String::with_capacity(ROOT.len() + 8);
    oid.push_str(ROOT);
    let digits = ytunnus.bytes().filter(u8::is_ascii_digit);
    for digit in digits.skip_while(|&digit| digit == b'0') {
        oid.push(char::from(digit));
    }
    Some(oid)
}

/// `true` when `value` is a dotted-decimal OID: at least two arcs, the first 0, 1 or 2, and no
/// arc with a leading zero; the `oid` format.
#[must_use]
pub fn is_oid(value: &str) -> bool {
    // One pass over the bytes: it runs for every OID of every document validated.
    let bytes = value.as_bytes();
    let (Some(first), Some(b'.')) = (bytes.first(), bytes.get(1)) else {
        return false;
    };
    if !matches!(first, b'0'..=b'2') {
        return false;
    }
    let mut arc_start = true;
    let mut leading_zero = false;
    for &byte in bytes.get(2..).unwrap_or_default() {
        match byte {
            b'.' if !arc_start => arc_start = true,
            b'0'..=b'9' if arc_start => {
                leading_zero = byte == b'0';
                arc_start = false;
            }
            b'0'..=b'9' if !leading_zero => {}
            _ => return false,
        }
    }
    !arc_start
}

/// `true` when `child` is an OID strictly below the arc `parent`.
#[must_use]
pub fn is_oid_under(child: &str, parent: &str) -> bool {
    child.len() > parent.len() + 1
        && child.starts_with(parent)
        && child.as_bytes()[parent.len()] == b'.'
        && is_oid(child)
}

/// `true` when `value` is `YYYY-MM-DD HH:MM:SS`, a real calendar date and a time of day, with
/// no offset: Epic's wall-clock export time (Europe/Helsinki). The `fi-local-date-time` format.
///
/// Whether that wall-clock time exists in Helsinki (daylight-saving gaps) is the mapping's
/// question, not the format's: the export is what Epic wrote.
#[must_use]
pub fn is_local_date_time(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 19
        && value.get(..10).is_some_and(is_date)
        && bytes[10] == b' '
        && bytes[13] == b':'
        && bytes[16] == b':'
        && two_digits(bytes[11], bytes[12]).is_some_and(|hour| hour < 24)
        && two_digits(bytes[14], bytes[15]).is_some_and(|minute| minute < 60)
        && two_digits(bytes[17], bytes[18]).is_some_and(|second| second < 60)
}

/// `true` when `value` is a real calendar date `YYYY-MM-DD`.
#[must_use]
pub fn is_date(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let (Some(hi), Some(lo)) = (
        two_digits(bytes[0], bytes[1]),
        two_digits(bytes[2], bytes[3]),
    ) else {
        return false;
    };
    let year = u16::from(hi) * 100 + u16::from(lo);
    match (
        two_digits(bytes[5], bytes[6]),
        two_digits(bytes[8], bytes[9]),
    ) {
        (Some(month), Some(day)) => is_calendar_date(year, month, day),
        _ => false,
    }
}

/// `true` when the day exists in the proleptic Gregorian calendar.
#[must_use]
pub fn is_calendar_date(year: u16, month: u8, day: u8) -> bool {
    let last = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=last).contains(&day)
}

fn is_leap_year(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn two_digits(a: u8, b: u8) -> Option<u8> {
    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'))
}

fn three_digits(bytes: &[u8]) -> Option<u16> {
    let [a, b, c] = *bytes else { return None };
    let hundreds = u16::from(two_digits(b'0', a)?);
    let rest = u16::from(two_digits(b, c)?);
    Some(hundreds * 100 + rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a hetu with the right check character, to test rules other than the check.
    fn with_check(stem: &str) -> String {
        let digits: String = stem.chars().filter(char::is_ascii_digit).collect();
        let number: u32 = digits.parse().expect("test stem has digits");
        format!("{stem}{}", HETU_CHECK_CHARS[(number % 31) as usize] as char)
    }

    #[test]
    fn hetu_values_from_the_contract() {
        for valid in ["131052-308T", "020516C903K", "010190-902S"] {
            assert_eq!(check_hetu(valid), Ok(()), "{valid}");
        }
        assert_eq!(
            check_hetu("010190-999K"),
            Err(HetuError::CheckCharacter),
            "the DVV illustration has a wrong check character"
        );
        assert_eq!(check_hetu("010190-999W"), Ok(()));
        assert_eq!(check_hetu("010190Y999W"), Ok(()));
    }

    #[test]
    fn hetu_accepts_every_century_sign_and_rejects_others() {
        for sign in [
            "+", "-", "Y", "X", "W", "V", "U", "A", "B", "C", "D", "E", "F",
        ] {
            let hetu = with_check(&format!("010101{sign}950"));
            assert!(is_hetu(&hetu), "{hetu}");
        }
        for sign in ["G", "Z", "a", "*", " "] {
            let hetu = with_check(&format!("010101{sign}950"));
            assert_eq!(check_hetu(&hetu), Err(HetuError::CenturySign), "{hetu}");
        }
    }

    #[test]
    fn hetu_date_must_exist_in_its_century() {
        assert!(is_hetu(&with_check("290200A950")), "2000 is a leap year");
        assert_eq!(
            check_hetu(&with_check("290200-950")),
            Err(HetuError::Date),
            "1900 is not"
        );
        assert_eq!(
            check_hetu(&with_check("290200+950")),
            Err(HetuError::Date),
            "1800 is not"
        );
        assert!(is_hetu(&with_check("290296-950")));
        assert_eq!(check_hetu(&with_check("310423B950")), Err(HetuError::Date));
        assert_eq!(check_hetu(&with_check("001290-950")), Err(HetuError::Date));
        assert_eq!(check_hetu(&with_check("011390-950")), Err(HetuError::Date));
        assert_eq!(check_hetu("01A190-950X"), Err(HetuError::Date));
    }

    #[test]
    fn hetu_individual_number_range() {
        assert_eq!(
            check_hetu(&with_check("010190-000")),
            Err(HetuError::IndividualNumber)
        );
        assert_eq!(
            check_hetu(&with_check("010190-001")),
            Err(HetuError::IndividualNumber)
        );
        assert!(is_hetu(&with_check("010190-002")));
        assert!(is_hetu(&with_check("010190-999")));
        assert_eq!(check_hetu("010190-9A2S"), Err(HetuError::IndividualNumber));
    }

    #[test]
    fn hetu_shape() {
        for bad in [
            "",
            "131052-308",
            "131052-308TT",
            "131052 308T",
            "131052–308T",
        ] {
            assert!(!is_hetu(bad), "{bad:?}");
        }
        assert_eq!(
            check_hetu("131052-308t"),
            Err(HetuError::CheckCharacter),
            "lower case"
        );
    }

    #[test]
    fn ytunnus_values() {
        for valid in [
            "0201256-6",
            "0204819-8",
            "2229500-6",
            "1572860-0",
            "2077474-0",
            "2388924-4",
        ] {
            assert!(is_ytunnus(valid), "{valid}");
        }
        for invalid in [
            "0201256-5",
            "0201256",
            "201256-6",
            "0201256-66",
            "02012566",
            "A201256-6",
        ] {
            assert!(!is_ytunnus(invalid), "{invalid}");
        }
        // Remainder 1 is never issued: 0000010 → 10*… let us find one by search and check it.
        let remainder_one = (0..10_000_000u32)
            .map(|n| format!("{n:07}"))
            .find(|digits| {
                let sum: u32 = digits
                    .bytes()
                    .zip([7, 9, 10, 5, 8, 4, 2])
                    .map(|(b, w)| u32::from(b - b'0') * w)
                    .sum();
                sum % 11 == 1
            })
            .expect("some number has remainder 1");
        for check in 0..10 {
            assert!(!is_ytunnus(&format!("{remainder_one}-{check}")));
        }
    }

    #[test]
    fn custodian_root() {
        assert_eq!(
            custodian_oid_root("0201256-6").as_deref(),
            Some("1.2.246.10.2012566")
        );
        assert_eq!(
            custodian_oid_root("2229500-6").as_deref(),
            Some("1.2.246.10.22295006")
        );
        assert_eq!(custodian_oid_root("0201256-5"), None);
    }

    /// The root is the one the earlier code (collect the digits, trim the zeros, format)
    /// gave, for every valid Y-tunnus with up to three leading zeros and many others.
    #[test]
    fn custodian_root_as_formatted_before() {
        fn before(ytunnus: &str) -> Option<String> {
            if !is_ytunnus(ytunnus) {
                return None;
            }
            let digits: String = ytunnus.chars().filter(char::is_ascii_digit).collect();
            let trimmed = digits.trim_start_matches('0');
            Some(format!("1.2.246.10.{trimmed}"))
        }
        let mut checked = 0;
        for number in (0..10_000).chain((0..10_000_000).step_by(997)) {
            for check in 0..10 {
                let ytunnus = format!("{number:07}-{check}");
                assert_eq!(custodian_oid_root(&ytunnus), before(&ytunnus), "{ytunnus}");
                checked += usize::from(before(&ytunnus).is_some());
            }
        }
        assert!(checked > 9_000, "{checked}");
        for odd in [
            "",
            "0000000-0",
            "020125-66",
            "0201256-66",
            "a201256-6",
            "0201256+6",
        ] {
            assert_eq!(custodian_oid_root(odd), before(odd), "{odd}");
        }
    }

    #[test]
    fn oid_check_agrees_with_splitting_on_dots() {
        fn by_arcs(value: &str) -> bool {
            let arcs: Vec<&str> = value.split('.').collect();
            arcs.len() >= 2
                && matches!(arcs[0], "0" | "1" | "2")
                && arcs.iter().all(|arc| {
                    !arc.is_empty()
                        && arc.bytes().all(|b| b.is_ascii_digit())
                        && !(arc.len() > 1 && arc.starts_with('0'))
                })
        }
        let alphabet = ['0', '1', '2', '9', '.', 'a'];
        let mut texts = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = texts
                .iter()
                .filter(|t| t.len() == texts.last().map_or(0, String::len))
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        for text in &texts {
            assert_eq!(is_oid(text), by_arcs(text), "{text:?}");
        }
    }

    #[test]
    fn oid_values() {
        for valid in [
            "1.2.246.10.2012566.13.2026.1",
            "1.2.246.537.6.1264.201701",
            "2.0",
            "0.9",
        ] {
            assert!(is_oid(valid), "{valid}");
        }
        for invalid in [
            "1",
            "",
            "1..2",
            "1.2.",
            ".1.2",
            "1.02.3",
            "3.1",
            "1.2.a",
            "urn:oid:1.2",
        ] {
            assert!(!is_oid(invalid), "{invalid}");
        }
        assert!(is_oid_under(
            "1.2.246.10.2012566.13.2026.1",
            "1.2.246.10.2012566"
        ));
        assert!(!is_oid_under(
            "1.2.246.10.20125660.13",
            "1.2.246.10.2012566"
        ));
        assert!(!is_oid_under("1.2.246.10.2012566", "1.2.246.10.2012566"));
    }

    #[test]
    fn local_date_time_values() {
        for valid in [
            "2026-03-29 03:30:00",
            "2024-02-29 23:59:59",
            "2026-10-25 03:30:00",
        ] {
            assert!(is_local_date_time(valid), "{valid}");
        }
        for invalid in [
            "2026-03-29T03:30:00",
            "2026-03-29 03:30:00+03:00",
            "2026-03-29 03:30",
            "2025-02-29 10:00:00",
            "2026-03-29 24:00:00",
            "2026-03-29 10:60:00",
            "2026-13-01 10:00:00",
            "2026-03-29 1:30:00Z",
            "２026-03-29 03:30:00",
        ] {
            assert!(!is_local_date_time(invalid), "{invalid}");
        }
    }

    #[test]
    fn dates() {
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2023-2-28"));
        assert!(!is_date("2023-00-10"));
    }
}
