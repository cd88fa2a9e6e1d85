//! The one error catalogue: Key → HTTP status (API.md §1.2). Every handler,
//! extractor and middleware answers through it.

use actix_web::http::StatusCode;

use crate::domain::ErrorKey;

pub fn status_of(key: ErrorKey) -> StatusCode {
    use ErrorKey::*;
    match key {
        RequiredParameterNotSpecified
        | InvalidCardNumber
        | InvalidMobileNumber
        | InvalidContactCode
        | InvalidParameter
        | InvalidAmount
        | InvalidJson => StatusCode::BAD_REQUEST,
        Unauthorized => StatusCode::UNAUTHORIZED,
        Forbidden | BlockReasonError | UnBlockReasonError => StatusCode::FORBIDDEN,
        CannotFindCardNumber
        | CannotFindMobileNumber
        | CannotFindContactCode
        | CannotFindMobile
        | PurchaseNotFound
        | NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        StatusError
        | CardNumberBindToAnotherContact
        | ContactBindToAnotherCardNumber
        | IdempotencyConflict
        | InsufficientBonuses
        | MobileNumberBelongsToAnotherContact => StatusCode::CONFLICT,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        StoreUnavailable | Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// With `business_errors_as_200`, which statuses still go out as they are:
/// authentication, size, throttling and server-side failures.
pub fn survives_legacy_mode(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::PAYLOAD_TOO_LARGE
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_status_in_its_class() {
        for key in ErrorKey::ALL {
            let status = status_of(key);
            let name = key.as_str();
            if name.starts_with("Invalid") {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
            }
            if name.starts_with("CannotFind") {
                assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
            }
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{name}"
            );
        }
    }

    #[test]
    fn legacy_mode_keeps_transport_level_statuses() {
        assert!(survives_legacy_mode(status_of(ErrorKey::Unauthorized)));
        assert!(survives_legacy_mode(status_of(ErrorKey::StoreUnavailable)));
        assert!(!survives_legacy_mode(status_of(ErrorKey::StatusError)));
        assert!(!survives_legacy_mode(status_of(ErrorKey::Forbidden)));
    }
}
