//! Key-encryption keys: the `Kms` trait that wraps tenant data keys, and its
//! default provider, a local key file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adscope_tenancy::TenantId;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Bytes of an AES-GCM nonce (96 bits).
pub const NONCE_LEN: usize = 12;

/// A plaintext 256-bit key, wiped from memory when dropped. Its `Debug`
/// never shows the bytes.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG (through a reseeding
    /// ChaCha generator).
    pub fn generate() -> DataKey {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut());
        DataKey(key)
    }

    /// A key from exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(array)))
    }

    /// The AES-256-GCM cipher of this key.
    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.0).into())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key encrypted by a key-encryption key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key-encryption key that wrapped it (provider-specific id).
    pub kek_id: String,
    /// Provider-specific bytes; for [`LocalKeyFile`]: nonce || ciphertext || tag.
    pub bytes: Vec<u8>,
}

/// A failure of a key-encryption key or of sealing with one.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The key file could not be read.
    #[error("ADSCOPE_KMS_KEY_FILE {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a 256-bit key.
    #[error(
        "ADSCOPE_KMS_KEY_FILE {path}: expected 32 raw bytes or 64 hex characters, found {found}"
    )]
    Malformed { path: PathBuf, found: String },
    /// The wrapped key names a key-encryption key this provider does not hold.
    #[error("data key was wrapped by key-encryption key {found:?}, not by {expected:?}")]
    UnknownKek { expected: String, found: String },
    /// The wrapped key failed authentication: tampered, truncated, or bound
    /// to another tenant.
    #[error("wrapped data key failed authentication")]
    Unwrap,
    /// Encryption failed (never expected with valid lengths).
    #[error("wrapping a data key failed")]
    Wrap,
}

/// A provider of key-encryption keys. Implementations for cloud KMSes can
/// call out over the network, hence async.
#[tonic::async_trait]
pub trait Kms: Send + Sync + fmt::Debug {
    /// The id of the key-encryption key new data keys are wrapped with.
    fn kek_id(&self) -> &str;

    /// Encrypts `key` for `tenant`: the result unwraps only for that tenant.
    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<WrappedKey, KmsError>;

    /// Decrypts a key [`Kms::wrap`] made for `tenant`.
    async fn unwrap(&self, tenant: TenantId, wrapped: &WrappedKey) -> Result<DataKey, KmsError>;
}

/// An AES-GCM nonce of the right length.
pub(crate) type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;

/// A fresh random 96-bit nonce.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    nonce
}

/// Associated data of a wrapped key: binds it to its tenant.
fn wrap_aad(tenant: TenantId) -> Vec<u8> {
    let mut aad = b"adscope/data-key/v1\0".to_vec();
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad
}

/// A key-encryption key read from a local file: 32 raw bytes or 64 hex
/// characters (surrounding whitespace ignored).
pub struct LocalKeyFile {
    kek: DataKey,
    kek_id: String,
}

impl fmt::Debug for LocalKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyFile")
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

impl LocalKeyFile {
    /// Reads the key at `path`. A file others may read is accepted with a
    /// warning (mounted secrets are often 0644); a wrong size is refused.
    pub fn open(path: &Path) -> Result<LocalKeyFile, KmsError> {
        let read_err = |source| KmsError::Read {
            path: path.to_owned(),
            source,
        };
        let mut contents = Zeroizing::new(std::fs::read(path).map_err(read_err)?);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(read_err)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "ADSCOPE_KMS_KEY_FILE is readable by group or others; restrict it to 0600"
                );
            }
        }
        let kek = Self::parse(&contents).ok_or_else(|| KmsError::Malformed {
            path: path.to_owned(),
            found: describe_size(&contents),
        })?;
        contents.zeroize();
        Ok(Self::from_key(kek))
    }

    /// A provider over an in-memory key (tests, or keys from elsewhere).
    pub fn from_key(kek: DataKey) -> LocalKeyFile {
        let kek_id = format!("local:{}", check_value(&kek));
        LocalKeyFile { kek, kek_id }
    }

    fn parse(contents: &[u8]) -> Option<DataKey> {
        if contents.len() == KEY_LEN {
            return DataKey::from_slice(contents);
        }
        let text = std::str::from_utf8(contents).ok()?.trim();
        if text.len() != 2 * KEY_LEN {
            return None;
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text, bytes.as_mut()).ok()?;
        DataKey::from_slice(bytes.as_ref())
    }
}

fn describe_size(contents: &[u8]) -> String {
    match std::str::from_utf8(contents) {
        Ok(text) => format!("{} characters", text.trim().len()),
        Err(_) => format!("{} bytes", contents.len()),
    }
}

/// A short public id of a key: the first 8 bytes of the GCM tag of an empty
/// message under it (a key check value), revealing nothing of the key.
fn check_value(key: &DataKey) -> String {
    let tag = key
        .cipher()
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: b"",
                aad: b"adscope/kek-check/v1",
            },
        )
        .unwrap_or_default();
    hex::encode(tag.get(..8).unwrap_or_default())
}

#[tonic::async_trait]
impl Kms for LocalKeyFile {
    fn kek_id(&self) -> &str {
        &self.kek_id
    }

    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<WrappedKey, KmsError> {
        let nonce = random_nonce();
        let aad = wrap_aad(tenant);
        let sealed = self
            .kek
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.0.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| KmsError::Wrap)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(WrappedKey {
            kek_id: self.kek_id.clone(),
            bytes,
        })
    }

    async fn unwrap(&self, tenant: TenantId, wrapped: &WrappedKey) -> Result<DataKey, KmsError> {
        if wrapped.kek_id != self.kek_id {
            return Err(KmsError::UnknownKek {
                expected: self.kek_id.clone(),
                found: wrapped.kek_id.clone(),
            });
        }
        if wrapped.bytes.len() <= NONCE_LEN {
            return Err(KmsError::Unwrap);
        }
        let (nonce, sealed) = wrapped.bytes.split_at(NONCE_LEN);
        let aad = wrap_aad(tenant);
        let plain = Zeroizing::new(
            self.kek
                .cipher()
                .decrypt(
                    &Nonce::try_from(nonce).map_err(|_| KmsError::Unwrap)?,
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| KmsError::Unwrap)?,
        );
        DataKey::from_slice(&plain).ok_or(KmsError::Unwrap)
    }
}

/// The configured provider: a [`LocalKeyFile`] when `key_file` is set, none
/// otherwise (credential storage then answers `FAILED_PRECONDITION`).
pub fn from_config(key_file: Option<&Path>) -> Result<Option<Arc<dyn Kms>>, KmsError> {
    key_file
        .map(|path| LocalKeyFile::open(path).map(|kms| Arc::new(kms) as Arc<dyn Kms>))
        .transpose()
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use uuid::Uuid;

    fn tenant() -> TenantId {
        TenantId::new(Uuid::new_v4())
    }

    fn temp_file(contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("adscope-kek-{}", Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[tokio::test]
    async fn a_wrapped_key_unwraps_for_its_tenant_only() {
        let kms = LocalKeyFile::from_key(DataKey::generate());
        let (a, b) = (tenant(), tenant());
        let key = DataKey::generate();
        let wrapped = kms.wrap(a, &key).await.unwrap();
        assert!(!wrapped.bytes.windows(KEY_LEN).any(|w| w == key.0.as_ref()));
        let back = kms.unwrap(a, &wrapped).await.unwrap();
        assert_eq!(back.0.as_ref(), key.0.as_ref());
        assert!(matches!(
            kms.unwrap(b, &wrapped).await,
            Err(KmsError::Unwrap)
        ));

        let mut tampered = wrapped.clone();
        tampered.bytes[NONCE_LEN + 3] ^= 1;
        assert!(matches!(
            kms.unwrap(a, &tampered).await,
            Err(KmsError::Unwrap)
        ));

        let other = LocalKeyFile::from_key(DataKey::generate());
        assert!(matches!(
            other.unwrap(a, &wrapped).await,
            Err(KmsError::UnknownKek { .. })
        ));
    }

    #[test]
    fn key_files_in_hex_or_raw_load_to_the_same_key_and_wrong_sizes_are_refused() {
        let key = [7u8; KEY_LEN];
        let raw = LocalKeyFile::open(&temp_file(&key)).unwrap();
        let hexed =
            LocalKeyFile::open(&temp_file(format!("{}\n", hex::encode(key)).as_bytes())).unwrap();
        assert_eq!(raw.kek_id(), hexed.kek_id());
        assert!(raw.kek_id().starts_with("local:"));

        let short = LocalKeyFile::open(&temp_file(b"abcd")).unwrap_err();
        assert!(matches!(short, KmsError::Malformed { .. }));
        assert!(short.to_string().contains("64 hex characters"), "{short}");
        let not_hex = LocalKeyFile::open(&temp_file(&[b'z'; 64])).unwrap_err();
        assert!(matches!(not_hex, KmsError::Malformed { .. }));
        let missing = LocalKeyFile::open(Path::new("/nonexistent/adscope.key")).unwrap_err();
        assert!(matches!(missing, KmsError::Read { .. }));
    }
}
