use std::fmt;

/// Every error Key of the wire contract (docs/api.md §11). The HTTP status for a
/// Key lives in the API layer's catalogue; the domain only names the Key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKey {
    RequiredParameterNotSpecified,
    InvalidCardNumber,
    InvalidMobileNumber,
    InvalidContactCode,
    /// A field whose format no more specific Key covers (dates, lengths,
    /// reference codes of data loading). Documented in docs/api-decisions.md.
    InvalidParameter,
    CannotFindCardNumber,
    CannotFindMobileNumber,
    CannotFindContactCode,
    CannotFindMobile,
    CardNumberBindToAnotherContact,
    ContactBindToAnotherCardNumber,
    StatusError,
    BlockReasonError,
    UnBlockReasonError,
    InvalidAmount,
    InsufficientBonuses,
    PurchaseNotFound,
    IdempotencyConflict,
    /// An import into a store that holds data, without `merge`.
    StoreNotEmpty,
    Unauthorized,
    Forbidden,
    RateLimited,
    MobileNumberBelongsToAnotherContact,
    InvalidJson,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    /// The HTTP request itself could not be parsed (request line, headers).
    MalformedRequest,
    /// The request head (request line and headers) is too large.
    HeadersTooLarge,
    /// The request head did not arrive in time.
    RequestTimeout,
    Overloaded,
    StoreUnavailable,
    InternalError,
}

impl ErrorKey {
    pub const ALL: [ErrorKey; 33] = [
        ErrorKey::RequiredParameterNotSpecified,
        ErrorKey::InvalidCardNumber,
        ErrorKey::InvalidMobileNumber,
        ErrorKey::InvalidContactCode,
        ErrorKey::InvalidParameter,
        ErrorKey::CannotFindCardNumber,
        ErrorKey::CannotFindMobileNumber,
        ErrorKey::CannotFindContactCode,
        ErrorKey::CannotFindMobile,
        ErrorKey::CardNumberBindToAnotherContact,
        ErrorKey::ContactBindToAnotherCardNumber,
        ErrorKey::StatusError,
        ErrorKey::BlockReasonError,
        ErrorKey::UnBlockReasonError,
        ErrorKey::InvalidAmount,
        ErrorKey::InsufficientBonuses,
        ErrorKey::PurchaseNotFound,
        ErrorKey::IdempotencyConflict,
        ErrorKey::StoreNotEmpty,
        ErrorKey::Unauthorized,
        ErrorKey::Forbidden,
        ErrorKey::RateLimited,
        ErrorKey::MobileNumberBelongsToAnotherContact,
        ErrorKey::InvalidJson,
        ErrorKey::PayloadTooLarge,
        ErrorKey::NotFound,
        ErrorKey::MethodNotAllowed,
        ErrorKey::MalformedRequest,
        ErrorKey::HeadersTooLarge,
        ErrorKey::RequestTimeout,
        ErrorKey::Overloaded,
        ErrorKey::StoreUnavailable,
        ErrorKey::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKey::RequiredParameterNotSpecified => "RequiredParameterNotSpecified",
            ErrorKey::InvalidCardNumber => "InvalidCardNumber",
            ErrorKey::InvalidMobileNumber => "InvalidMobileNumber",
            ErrorKey::InvalidContactCode => "InvalidContactCode",
            ErrorKey::InvalidParameter => "InvalidParameter",
            ErrorKey::CannotFindCardNumber => "CannotFindCardNumber",
            ErrorKey::CannotFindMobileNumber => "CannotFindMobileNumber",
            ErrorKey::CannotFindContactCode => "CannotFindContactCode",
            ErrorKey::CannotFindMobile => "CannotFindMobile",
            ErrorKey::CardNumberBindToAnotherContact => "CardNumberBindToAnotherContact",
            ErrorKey::ContactBindToAnotherCardNumber => "ContactBindToAnotherCardNumber",
            ErrorKey::StatusError => "StatusError",
            ErrorKey::BlockReasonError => "BlockReasonError",
            ErrorKey::UnBlockReasonError => "UnBlockReasonError",
            ErrorKey::InvalidAmount => "InvalidAmount",
            ErrorKey::InsufficientBonuses => "InsufficientBonuses",
            ErrorKey::PurchaseNotFound => "PurchaseNotFound",
            ErrorKey::IdempotencyConflict => "IdempotencyConflict",
            ErrorKey::StoreNotEmpty => "StoreNotEmpty",
            ErrorKey::Unauthorized => "Unauthorized",
            ErrorKey::Forbidden => "Forbidden",
            ErrorKey::RateLimited => "RateLimited",
            ErrorKey::MobileNumberBelongsToAnotherContact => "MobileNumberBelongsToAnotherContact",
            ErrorKey::InvalidJson => "InvalidJson",
            ErrorKey::PayloadTooLarge => "PayloadTooLarge",
            ErrorKey::NotFound => "NotFound",
            ErrorKey::MethodNotAllowed => "MethodNotAllowed",
            ErrorKey::MalformedRequest => "MalformedRequest",
            ErrorKey::HeadersTooLarge => "HeadersTooLarge",
            ErrorKey::RequestTimeout => "RequestTimeout",
            ErrorKey::Overloaded => "Overloaded",
            ErrorKey::StoreUnavailable => "StoreUnavailable",
            ErrorKey::InternalError => "InternalError",
        }
    }
}

impl fmt::Display for ErrorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal by a business rule or a format check: the Key and the
/// human-readable `Value` of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RuleError {
    pub key: ErrorKey,
    pub message: String,
}

impl RuleError {
    pub fn new(key: ErrorKey, message: impl Into<String>) -> Self {
        RuleError {
            key,
            message: message.into(),
        }
    }
}
