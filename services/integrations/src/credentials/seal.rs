//! Sealing a credential's tokens under a data key (AES-256-GCM, random
//! 96-bit nonce), bound to the tenant, the row and the key version.

use aes_gcm::aead::{Aead, Payload};
use zeroize::Zeroizing;

use adscope_tenancy::TenantId;

use crate::kms::{DataKey, NONCE_LEN, Nonce, random_nonce};

/// The tokens of one credential, wiped from memory when dropped.
pub(crate) struct Secrets {
    pub(crate) access_token: Zeroizing<String>,
    pub(crate) refresh_token: Zeroizing<String>,
}

/// Where a sealed credential belongs: moved to another tenant, row or key
/// version it no longer opens.
pub(crate) struct Binding<'a> {
    pub(crate) tenant: TenantId,
    pub(crate) provider: &'a str,
    pub(crate) account_id: &'a str,
    pub(crate) key_version: i32,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"adscope/credential/v1\0".to_vec();
        aad.extend_from_slice(self.tenant.as_uuid().as_bytes());
        for part in [self.provider, self.account_id] {
            aad.extend_from_slice(&u32_len(part.len()).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad.extend_from_slice(&self.key_version.to_be_bytes());
        aad
    }
}

fn u32_len(len: usize) -> u32 {
    // Lengths are validated far below 4 GiB before anything is sealed.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The sealed form: ciphertext with its tag, and the nonce.
pub(crate) struct Sealed {
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) nonce: Vec<u8>,
}

/// Plaintext layout: a format byte, the access token's length (u32 BE), the
/// access token, then the refresh token.
const FORMAT: u8 = 1;

pub(crate) fn seal(key: &DataKey, binding: &Binding<'_>, secrets: &Secrets) -> Option<Sealed> {
    let access = secrets.access_token.as_bytes();
    let refresh = secrets.refresh_token.as_bytes();
    let mut plain = Zeroizing::new(Vec::with_capacity(5 + access.len() + refresh.len()));
    plain.push(FORMAT);
    plain.extend_from_slice(&u32_len(access.len()).to_be_bytes());
    plain.extend_from_slice(access);
    plain.extend_from_slice(refresh);
    let nonce = random_nonce();
    let aad = binding.aad();
    let ciphertext = key
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .ok()?;
    Some(Sealed {
        ciphertext,
        nonce: nonce.to_vec(),
    })
}

/// Opens a sealed credential; `None` when it fails authentication (never
/// garbage).
pub(crate) fn open(
    key: &DataKey,
    binding: &Binding<'_>,
    ciphertext: &[u8],
    nonce: &[u8],
) -> Option<Secrets> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let nonce = Nonce::try_from(nonce).ok()?;
    let aad = binding.aad();
    let plain = Zeroizing::new(
        key.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?,
    );
    let (&format, rest) = plain.split_first()?;
    if format != FORMAT || rest.len() < 4 {
        return None;
    }
    let (len, rest) = rest.split_at(4);
    let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (access, refresh) = rest.split_at(len);
    Some(Secrets {
        access_token: Zeroizing::new(String::from_utf8(access.to_vec()).ok()?),
        refresh_token: Zeroizing::new(String::from_utf8(refresh.to_vec()).ok()?),
    })
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use uuid::Uuid;

    fn secrets() -> Secrets {
        Secrets {
            access_token: Zeroizing::new("EAAB-access-secret".into()),
            refresh_token: Zeroizing::new("refresh-secret".into()),
        }
    }

    #[test]
    fn sealed_tokens_open_only_with_the_same_key_and_binding() {
        let key = DataKey::generate();
        let tenant = TenantId::new(Uuid::new_v4());
        let binding = Binding {
            tenant,
            provider: "meta",
            account_id: "act_1",
            key_version: 1,
        };
        let sealed = seal(&key, &binding, &secrets()).unwrap();
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        let text = String::from_utf8_lossy(&sealed.ciphertext);
        assert!(!text.contains("access-secret") && !text.contains("refresh-secret"));

        let opened = open(&key, &binding, &sealed.ciphertext, &sealed.nonce).unwrap();
        assert_eq!(opened.access_token.as_str(), "EAAB-access-secret");
        assert_eq!(opened.refresh_token.as_str(), "refresh-secret");

        let elsewhere = [
            Binding {
                tenant: TenantId::new(Uuid::new_v4()),
                ..binding
            },
            Binding {
                account_id: "act_2",
                ..binding
            },
            Binding {
                provider: "tiktok",
                ..binding
            },
            Binding {
                key_version: 2,
                ..binding
            },
        ];
        for other in &elsewhere {
            assert!(open(&key, other, &sealed.ciphertext, &sealed.nonce).is_none());
        }
        assert!(
            open(
                &DataKey::generate(),
                &binding,
                &sealed.ciphertext,
                &sealed.nonce
            )
            .is_none()
        );
        let mut tampered = sealed.ciphertext.clone();
        tampered[0] ^= 0x80;
        assert!(open(&key, &binding, &tampered, &sealed.nonce).is_none());
    }
}
