//! The one error catalogue: Key → HTTP status (docs/api.md §1.2). Every handler,
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
        | InvalidJson
        | MalformedRequest => StatusCode::BAD_REQUEST,
        Unauthorized => StatusCode::UNAUTHORIZED,
        Forbidden | BlockReasonError | UnBlockReasonError => StatusCode::FORBIDDEN,
        CannotFindCardNumber
        | CannotFindMobileNumber
        | CannotFindContactCode
        | CannotFindMobile
        | PurchaseNotFound
        | NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        StatusError
        | CardNumberBindToAnotherContact
        | ContactBindToAnotherCardNumber
        | IdempotencyConflict
        | StoreNotEmpty
        | InsufficientBonuses
        | MobileNumberBelongsToAnotherContact => StatusCode::CONFLICT,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        StoreUnavailable | Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What a Key means, for the OpenAPI document and a till's error table.
pub fn meaning(key: ErrorKey) -> &'static str {
    use ErrorKey::*;
    match key {
        RequiredParameterNotSpecified => "required parameter(s) missing; Value lists them all",
        InvalidCardNumber => "the card number's format is wrong",
        InvalidMobileNumber => "the mobile number's format is wrong",
        InvalidContactCode => "the contact code's format is wrong",
        InvalidParameter => "a parameter no more specific Key covers is malformed or out of range (dates, lengths, reference codes, ids, limit/cursor, the query string, a purchase Date outside its window)",
        CannotFindCardNumber => "no card with that number",
        CannotFindMobileNumber => "balance by phone: no card for that mobile number",
        CannotFindContactCode => "no contact with that code, or no card for it",
        CannotFindMobile => "bindto/block/unblock: no contact with that mobile number",
        CardNumberBindToAnotherContact => "the card is bound to another contact",
        ContactBindToAnotherCardNumber => "the contact already holds another usable card",
        StatusError => "the card's status forbids the operation; Value says which",
        BlockReasonError => "the block reason is unknown or not allowed to this role",
        UnBlockReasonError => "the unblock reason is unknown, does not answer the block reason, or is not allowed to this role",
        InvalidAmount => "an amount is malformed, negative, zero where it must be positive, or larger than allowed",
        InsufficientBonuses => "more bonuses to write off than allowed (balance, share of the purchase)",
        PurchaseNotFound => "no purchase with that PurchaseId (or its records have expired)",
        IdempotencyConflict => "the PurchaseId/RefundId/OperationId was used with another request or another card",
        StoreNotEmpty => "an import into a store that holds data (without ?merge=true)",
        Unauthorized => "missing or wrong credentials (HTTP Basic)",
        Forbidden => "the role may not call this method",
        RateLimited => "too many failed logins (this login from this address, or this address in all); retry after Retry-After seconds",
        MobileNumberBelongsToAnotherContact => "the mobile number belongs to another contact",
        InvalidJson => "the body is not a JSON object, or a parameter has the wrong JSON type",
        PayloadTooLarge => "the body is larger than allowed",
        NotFound => "no such route",
        MethodNotAllowed => "the route does not answer this HTTP method",
        MalformedRequest => "the HTTP request could not be parsed (request line, headers, framing)",
        HeadersTooLarge => "the request line and headers are larger than allowed",
        RequestTimeout => "the request head or body did not arrive in time",
        Overloaded => "the engine's queues are full; retry after Retry-After seconds",
        StoreUnavailable => "the store does not answer (or did not confirm a write); retrying the same request is safe",
        InternalError => "an unexpected server error",
    }
}

/// Keys the server answers beyond docs/api.md §11.
pub fn beyond_contract(key: ErrorKey) -> bool {
    use ErrorKey::*;
    matches!(
        key,
        InvalidParameter | MalformedRequest | HeadersTooLarge | RequestTimeout
    )
}

/// With `business_errors_as_200`, which statuses still go out as they are:
/// authentication, size, time, throttling and server-side failures. A body
/// that did not arrive in time is the HTTP layer's 408 like a late head,
/// whichever of the two noticed it (docs/api-decisions.md).
pub fn keeps_status_when_business_errors_as_200(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::PAYLOAD_TOO_LARGE
        || status == StatusCode::REQUEST_TIMEOUT
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
    fn docs_api_decisions_lists_every_key_with_its_status() {
        let doc = include_str!("../../docs/api-decisions.md");
        for key in ErrorKey::ALL {
            let row = format!("| `{}` | {} |", key.as_str(), status_of(key).as_u16());
            assert!(doc.contains(&row), "docs/api-decisions.md lacks {row}");
        }
    }

    #[test]
    fn business_errors_as_200_keeps_transport_level_statuses() {
        assert!(keeps_status_when_business_errors_as_200(status_of(
            ErrorKey::Unauthorized
        )));
        assert!(keeps_status_when_business_errors_as_200(status_of(
            ErrorKey::StoreUnavailable
        )));
        assert!(keeps_status_when_business_errors_as_200(status_of(
            ErrorKey::RequestTimeout
        )));
        assert!(!keeps_status_when_business_errors_as_200(status_of(
            ErrorKey::StatusError
        )));
        assert!(!keeps_status_when_business_errors_as_200(status_of(
            ErrorKey::Forbidden
        )));
    }
}
