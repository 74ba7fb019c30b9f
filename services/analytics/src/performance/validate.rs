//! Validation of ingested performance records.

use adscope_proto::analytics::v1 as pb;
use chrono::NaiveDate;

use super::metrics::level_name;

/// Active ISO 4217 codes (plus XXX-family codes platforms never use are
/// left out on purpose: spend is always in a real currency).
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN \
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD \
JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU \
MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB \
RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD \
TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL";

/// The largest integer part numeric(20, 6) holds.
const MAX_INTEGER_DIGITS: usize = 14;
const MAX_FRACTION_DIGITS: usize = 6;

/// A record that passed validation, normalised for storage.
#[derive(Debug)]
pub(super) struct Valid {
    pub(super) date: NaiveDate,
    pub(super) level: &'static str,
    pub(super) source: String,
    pub(super) external_id: String,
    pub(super) campaign_external_id: String,
    pub(super) ad_set_external_id: String,
    pub(super) ad_external_id: String,
    pub(super) impressions: i64,
    pub(super) reach: i64,
    pub(super) clicks: i64,
    pub(super) conversions: i64,
    pub(super) spend: String,
    pub(super) currency: String,
}

/// A calendar day written exactly as "YYYY-MM-DD".
pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(format!("{text:?} is not a date as \"YYYY-MM-DD\""));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a calendar day"))
}

/// Checks spend text: digits, optionally a point and up to six decimals.
fn check_spend(text: &str) -> Result<(), String> {
    let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if integer.is_empty() || !digits(integer) || !digits(fraction) || text.ends_with('.') {
        return Err(format!(
            "{text:?} is not a non-negative decimal such as \"12.50\""
        ));
    }
    if integer.trim_start_matches('0').len() > MAX_INTEGER_DIGITS {
        return Err(format!("must be below 10^{MAX_INTEGER_DIGITS}"));
    }
    if fraction.len() > MAX_FRACTION_DIGITS {
        return Err(format!("at most {MAX_FRACTION_DIGITS} decimal places"));
    }
    Ok(())
}

/// Validates one record; on failure returns its external id and the reason
/// ("field: what is wrong", every problem of the record joined by "; ").
pub(super) fn validate_record(record: pb::PerformanceRecord) -> Result<Valid, (String, String)> {
    let mut problems: Vec<String> = Vec::new();
    let date = parse_date(&record.date)
        .map_err(|e| problems.push(format!("date: {e}")))
        .ok();
    let level = match pb::RecordLevel::try_from(record.level)
        .ok()
        .and_then(level_name)
    {
        Some(level) => Some(level),
        None => {
            problems.push("level: must be CAMPAIGN, AD_SET or AD".into());
            None
        }
    };
    let source = record.source.trim().to_owned();
    if source.is_empty() {
        problems.push("source: is required, e.g. \"meta\"".into());
    }
    let external_id = record.external_id.trim().to_owned();
    if external_id.is_empty() {
        problems.push("external_id: is required".into());
    }
    for (field, value) in [
        ("impressions", record.impressions),
        ("reach", record.reach),
        ("clicks", record.clicks),
        ("conversions", record.conversions),
    ] {
        if value < 0 {
            problems.push(format!("{field}: must not be negative"));
        }
    }
    let spend = record.spend.trim().to_owned();
    if let Err(e) = check_spend(&spend) {
        problems.push(format!("spend: {e}"));
    }
    let currency = record.currency.trim().to_owned();
    if currency.len() != 3 || !ISO_4217.split(' ').any(|code| code == currency) {
        problems.push(format!(
            "currency: {currency:?} is not an ISO 4217 code such as \"EUR\""
        ));
    }

    // The entity's own id fills its column when the client left it empty;
    // a different value there contradicts the record.
    let mut campaign_external_id = record.campaign_external_id.trim().to_owned();
    let mut ad_set_external_id = record.ad_set_external_id.trim().to_owned();
    let mut ad_external_id = record.ad_external_id.trim().to_owned();
    if let Some(level) = level
        && !external_id.is_empty()
    {
        let (field, column) = match level {
            "campaign" => ("campaign_external_id", &mut campaign_external_id),
            "ad_set" => ("ad_set_external_id", &mut ad_set_external_id),
            _ => ("ad_external_id", &mut ad_external_id),
        };
        if column.is_empty() {
            column.clone_from(&external_id);
        } else if *column != external_id {
            problems.push(format!("{field}: must equal external_id at this level"));
        }
    }

    match (date, level) {
        (Some(date), Some(level)) if problems.is_empty() => Ok(Valid {
            date,
            level,
            source,
            external_id,
            campaign_external_id,
            ad_set_external_id,
            ad_external_id,
            impressions: record.impressions,
            reach: record.reach,
            clicks: record.clicks,
            conversions: record.conversions,
            spend,
            currency,
        }),
        _ => Err((record.external_id, problems.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> pb::PerformanceRecord {
        pb::PerformanceRecord {
            date: "2024-03-01".into(),
            level: pb::RecordLevel::Campaign.into(),
            source: "meta".into(),
            external_id: "c1".into(),
            spend: "12.50".into(),
            currency: "EUR".into(),
            impressions: 10,
            ..Default::default()
        }
    }

    #[test]
    fn a_good_record_passes_and_fills_its_own_column() {
        let valid = validate_record(good()).unwrap();
        assert_eq!(valid.campaign_external_id, "c1");
        assert_eq!(valid.level, "campaign");
    }

    #[test]
    fn each_bad_field_is_named_in_the_reason() {
        for (patch, field) in [
            (
                pb::PerformanceRecord {
                    date: "2024-3-1".into(),
                    ..good()
                },
                "date",
            ),
            (
                pb::PerformanceRecord {
                    date: "2024-02-30".into(),
                    ..good()
                },
                "date",
            ),
            (pb::PerformanceRecord { level: 0, ..good() }, "level"),
            (
                pb::PerformanceRecord {
                    source: "".into(),
                    ..good()
                },
                "source",
            ),
            (
                pb::PerformanceRecord {
                    external_id: " ".into(),
                    ..good()
                },
                "external_id",
            ),
            (
                pb::PerformanceRecord {
                    clicks: -1,
                    ..good()
                },
                "clicks",
            ),
            (
                pb::PerformanceRecord {
                    spend: "-1".into(),
                    ..good()
                },
                "spend",
            ),
            (
                pb::PerformanceRecord {
                    spend: "1e3".into(),
                    ..good()
                },
                "spend",
            ),
            (
                pb::PerformanceRecord {
                    spend: "1.".into(),
                    ..good()
                },
                "spend",
            ),
            (
                pb::PerformanceRecord {
                    spend: "".into(),
                    ..good()
                },
                "spend",
            ),
            (
                pb::PerformanceRecord {
                    spend: "0.1234567".into(),
                    ..good()
                },
                "spend",
            ),
            (
                pb::PerformanceRecord {
                    currency: "EURO".into(),
                    ..good()
                },
                "currency",
            ),
            (
                pb::PerformanceRecord {
                    currency: "ABC".into(),
                    ..good()
                },
                "currency",
            ),
            (
                pb::PerformanceRecord {
                    campaign_external_id: "other".into(),
                    ..good()
                },
                "campaign_external_id",
            ),
        ] {
            let (_, reason) = validate_record(patch).unwrap_err();
            assert!(reason.starts_with(&format!("{field}:")), "{reason}");
        }
    }

    #[test]
    fn spend_accepts_plain_decimals() {
        for ok in ["0", "12", "12.5", "0.000001", "99999999999999.999999"] {
            assert!(check_spend(ok).is_ok(), "{ok}");
        }
    }
}
