//! What each route takes, answers and refuses, for the OpenAPI document.
//! One exhaustive match over [`RouteId`]: a new route does not compile
//! until it is described here.

use crate::api::router::RouteId;
use crate::domain::ErrorKey::{self, *};

/// The JSON type of a field.
#[derive(Clone, Copy)]
pub enum Ty {
    Str,
    /// A reference code or number: a string on output; on input a string
    /// or a JSON integer.
    Code,
    /// Money or bonuses: a JSON number with at most two decimals (on input
    /// also its text).
    Money,
    Int,
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 UTC.
    Time,
    /// A component schema.
    Ref(&'static str),
    /// An array of a component schema.
    List(&'static str),
}

#[derive(Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub nullable: bool,
    pub doc: &'static str,
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required: true,
        nullable: false,
        doc,
    }
}

const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required: false,
        nullable: false,
        doc,
    }
}

const fn null(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required: true,
        nullable: true,
        doc,
    }
}

pub struct Operation {
    pub id: &'static str,
    pub summary: &'static str,
    /// Path segments captured by the route, in order.
    pub path: &'static [Field],
    /// Query parameters (GET) or JSON body properties (POST).
    pub inputs: &'static [Field],
    /// The body is a JSON array or NDJSON (data loading) instead.
    pub array_body: Option<&'static str>,
    /// The body is NDJSON only (an import).
    pub stream_body: Option<&'static str>,
    /// Fields of the answer after `Status`, `Key`, `Value`.
    pub answer: &'static [Field],
    /// Fields a refusal carries after the envelope, when it has them.
    pub refusal: &'static [Field],
    /// The answer is not the envelope (metrics text, the document itself).
    pub raw_answer: Option<(&'static str, &'static str)>,
    /// Keys this route's own checks answer (the dispatcher's — credentials,
    /// role, body, store — are added by the document).
    pub errors: &'static [ErrorKey],
}

/// A `'static` slice of fields built by the const constructors.
macro_rules! fields {
    ($($f:expr),* $(,)?) => {{
        const FIELDS: &[Field] = &[$($f),*];
        FIELDS
    }};
}

const NUMBER_PATH: &[Field] = &[req("number", Ty::Str, "card number")];
const PAGE: &[Field] = &[
    opt("limit", Ty::Int, "items per page, default 50, at most 500"),
    opt("cursor", Ty::Int, "`NextCursor` of the previous page"),
];
const PAGE_ANSWER: &[Field] = &[
    req("Items", Ty::List("HistoryEntry"), "newest first"),
    null(
        "NextCursor",
        Ty::Str,
        "cursor of the next page; null on the last",
    ),
    opt(
        "OlderEntriesArchived",
        Ty::Bool,
        "present (true) only on the last page this server can read when older entries were moved to the archive and no archive is configured to read them from",
    ),
];
const BALANCE: &[Field] = &[
    req("Number", Ty::Str, "card number"),
    req(
        "MobileNumber",
        Ty::Str,
        "bound contact's mobile number, \"\" if unbound",
    ),
    req("Code", Ty::Str, "bound contact's code, \"\" if unbound"),
    req("Name", Ty::Str, "bound contact's name, \"\" if unbound"),
    req(
        "StatusCode",
        Ty::Code,
        "card status: 0 New, 1 Issued, 2 Active, 3 Blocked",
    ),
    req("StatusName", Ty::Str, "card status name"),
    req("CategoryCode", Ty::Code, "0 Plastic, 1 Virtual"),
    req("CategoryName", Ty::Str, "card category name"),
    req(
        "TypeCode",
        Ty::Code,
        "0 Bonus, 1 Discount, 2 Bonus/Discount",
    ),
    req("TypeName", Ty::Str, "card type name"),
    req(
        "Bonuses",
        Ty::List("BonusesInfo"),
        "one entry per bonus status and type above zero",
    ),
    opt("BlockReasonCode", Ty::Code, "only while Blocked"),
    opt("BlockReasonName", Ty::Str, "only while Blocked"),
    opt("ReplacedBy", Ty::Str, "only for a card replaced by another"),
];
const CONTACT: &[Field] = &[
    req("Code", Ty::Str, "contact code"),
    req("Name", Ty::Str, ""),
    req("MobileNumber", Ty::Str, "normalized digits"),
    req("Email", Ty::Str, ""),
    req("BirthDate", Ty::Str, "YYYY-MM-DD or \"\""),
    req("Gender", Ty::Str, ""),
    req("City", Ty::Str, ""),
    null("Card", Ty::Ref("CardSummary"), "the contact's current card"),
];
const REVERSAL: &[Field] = &[
    req(
        "Number",
        Ty::Str,
        "the card that holds the purchase's bonuses now",
    ),
    req("PurchaseId", Ty::Str, ""),
    opt("RefundId", Ty::Str, "refunds only"),
    req("Amount", Ty::Money, "money refunded by this operation"),
    req(
        "AccrualReversed",
        Ty::Money,
        "bonuses of the purchase's accrual taken back",
    ),
    req("BonusReturned", Ty::Money, "written-off bonuses given back"),
    req(
        "Uncovered",
        Ty::Money,
        "spent accrual the balance could not cover",
    ),
    req("RefundedTotal", Ty::Money, "money refunded so far"),
];
const CARD_CHECKS: &[ErrorKey] = &[
    RequiredParameterNotSpecified,
    InvalidCardNumber,
    CannotFindCardNumber,
    StatusError,
];
const BLOCK_INPUTS: &[Field] = &[
    opt(
        "Number",
        Ty::Code,
        "card number; this or ContactMobileNumber is required",
    ),
    opt(
        "ContactMobileNumber",
        Ty::Code,
        "acts on the contact's current card",
    ),
];

const BULK_ANSWER: &[Field] = &[
    req("Created", Ty::Int, "lines that created a record"),
    req("Updated", Ty::Int, "lines that changed an existing record"),
    req(
        "Existing",
        Ty::Int,
        "lines whose record was already as they say (left alone)",
    ),
    req("Rejected", Ty::Int, "every rejected line"),
    req(
        "RejectedLines",
        Ty::List("RejectedLine"),
        "the first rejected lines (bulk.max_listed_rejections, default 1000)",
    ),
];
const IMPORT_ANSWER: &[Field] = &[
    req("Created", Ty::Int, "records created"),
    req("Updated", Ty::Int, "always 0: an import never overwrites"),
    req(
        "Existing",
        Ty::Int,
        "records that existed already (left alone)",
    ),
    req("Rejected", Ty::Int, "lines that do not read"),
    req(
        "RejectedLines",
        Ty::List("RejectedLine"),
        "the first rejected lines",
    ),
    req(
        "Complete",
        Ty::Bool,
        "the dump's end line was read (else it was cut short)",
    ),
];

pub fn operation(id: RouteId) -> Operation {
    let base = Operation {
        id: "",
        summary: "",
        path: fields![],
        inputs: fields![],
        array_body: None,
        stream_body: None,
        answer: fields![],
        refusal: fields![],
        raw_answer: None,
        errors: &[],
    };
    match id {
        RouteId::BalanceByNumber => Operation {
            id: "GetBalanceByCardNumber",
            summary: "Balance by card number. A segment that is no valid card number but an existing contact's code answers that contact's balance (the seed's /balance/by/{code}).",
            path: NUMBER_PATH,
            answer: BALANCE,
            errors: &[InvalidCardNumber, CannotFindCardNumber, CannotFindContactCode],
            ..base
        },
        RouteId::BalanceByPhone => Operation {
            id: "GetBalanceByMobileNumber",
            summary: "Balance of the card of the contact owning the mobile number",
            path: fields![req("phone", Ty::Str, "mobile number, any usual formatting")],
            answer: BALANCE,
            errors: &[InvalidMobileNumber, CannotFindMobileNumber],
            ..base
        },
        RouteId::BalanceByCode => Operation {
            id: "GetBalanceByContactCode",
            summary: "Balance of the contact's current card",
            path: fields![req("code", Ty::Str, "contact code")],
            answer: BALANCE,
            errors: &[InvalidContactCode, CannotFindContactCode],
            ..base
        },
        RouteId::Issue => Operation {
            id: "Issue",
            summary: "New → Issued (the card was sold)",
            inputs: fields![req("Number", Ty::Code, "card number")],
            errors: CARD_CHECKS,
            ..base
        },
        RouteId::BindTo => Operation {
            id: "BindTo",
            summary: "Binds an Issued card to the contact found by mobile number",
            inputs: fields![
                req("Number", Ty::Code, "card number"),
                req("MobileNumber", Ty::Code, "the contact's mobile number"),
            ],
            errors: &[
                RequiredParameterNotSpecified,
                InvalidCardNumber,
                InvalidMobileNumber,
                CannotFindCardNumber,
                CannotFindMobile,
                CardNumberBindToAnotherContact,
                ContactBindToAnotherCardNumber,
                StatusError,
            ],
            ..base
        },
        RouteId::Active => Operation {
            id: "Active",
            summary: "Issued (bound) → Active when the contact's data is sufficient",
            inputs: fields![req("Number", Ty::Code, "card number")],
            errors: CARD_CHECKS,
            ..base
        },
        RouteId::Block => Operation {
            id: "Block",
            summary: "Issued (bound) or Active → Blocked",
            inputs: fields![
                BLOCK_INPUTS[0],
                BLOCK_INPUTS[1],
                req("BlockReasonCode", Ty::Code, "0 lost, 1 unwanted, 2 blacklist, 3 refusal, 4 replacement"),
                opt("BlockReasonName", Ty::Str, "informative; kept in the history"),
            ],
            errors: &[
                RequiredParameterNotSpecified,
                InvalidCardNumber,
                InvalidMobileNumber,
                CannotFindCardNumber,
                CannotFindMobile,
                CardNumberBindToAnotherContact,
                BlockReasonError,
                StatusError,
            ],
            ..base
        },
        RouteId::Unblock => Operation {
            id: "UnBlock",
            summary: "Blocked → Active (or Issued when the contact's data is insufficient)",
            inputs: fields![
                BLOCK_INPUTS[0],
                BLOCK_INPUTS[1],
                req("UnBlockReasonCode", Ty::Code, "0 found, 1 exit unwanted, 2 exit blacklist, 3 restore after refusal"),
                opt("UnBlockReasonName", Ty::Str, "informative; kept in the history"),
            ],
            errors: &[
                RequiredParameterNotSpecified,
                InvalidCardNumber,
                InvalidMobileNumber,
                CannotFindCardNumber,
                CannotFindMobile,
                CardNumberBindToAnotherContact,
                UnBlockReasonError,
                StatusError,
            ],
            ..base
        },
        RouteId::History => Operation {
            id: "GetCardHistory",
            summary: "The card's audit history, newest first, paginated",
            path: NUMBER_PATH,
            inputs: PAGE,
            answer: PAGE_ANSWER,
            errors: &[InvalidCardNumber, CannotFindCardNumber],
            ..base
        },
        RouteId::ContactUpsert => Operation {
            id: "UpsertContact",
            summary: "Creates or updates one contact (absent fields are kept, \"\" clears)",
            inputs: fields![
                opt("Code", Ty::Code, "generated when absent"),
                opt("Name", Ty::Str, ""),
                opt("MobileNumber", Ty::Code, "required to create a contact"),
                opt("Email", Ty::Str, ""),
                opt("BirthDate", Ty::Date, ""),
                opt("Gender", Ty::Str, ""),
                opt("City", Ty::Str, ""),
            ],
            answer: fields![
                CONTACT[0], CONTACT[1], CONTACT[2], CONTACT[3], CONTACT[4], CONTACT[5],
                CONTACT[6], CONTACT[7],
                req("Created", Ty::Bool, "whether this call created the contact"),
            ],
            errors: &[
                RequiredParameterNotSpecified,
                InvalidContactCode,
                InvalidMobileNumber,
                MobileNumberBelongsToAnotherContact,
            ],
            ..base
        },
        RouteId::ContactGet => Operation {
            id: "GetContact",
            summary: "The contact with its current card",
            path: fields![req("code", Ty::Str, "contact code")],
            answer: CONTACT,
            errors: &[InvalidContactCode, CannotFindContactCode],
            ..base
        },
        RouteId::AdminCards => Operation {
            id: "LoadCards",
            summary: "Creates cards in New; existing cards keep their status. A JSON array (read whole, within the admin body limit) never changes an existing card; NDJSON (`application/x-ndjson`, streamed, any size) also sets the category and type of a card that is still New (`Updated`). A rejected line never stops the load.",
            array_body: Some("CardLine"),
            answer: BULK_ANSWER,
            refusal: BULK_ANSWER,
            errors: &[],
            ..base
        },
        RouteId::AdminContacts => Operation {
            id: "LoadContacts",
            summary: "Creates or updates contacts as POST /api/contact does (a mobile number of another contact is a rejected line, MobileNumberBelongsToAnotherContact); a line's CardNumber is issued if New and bound to the contact, and with Activate also activated. A JSON array or NDJSON; lines run concurrently.",
            array_body: Some("ContactLine"),
            answer: BULK_ANSWER,
            refusal: BULK_ANSWER,
            errors: &[],
            ..base
        },
        RouteId::AdminExport => Operation {
            id: "Export",
            summary: "NDJSON dump of every card (with its history), card record (purchases, operation outcomes, with their time left), contact and index entry: a header line, the records, an end line with the counts (docs/export.md). Streamed; an error part-way ends it with an `error` line and no end line.",
            raw_answer: Some(("application/x-ndjson", "the dump, one record per line")),
            ..base
        },
        RouteId::AdminImport => Operation {
            id: "Import",
            summary: "Loads an export into an empty store (StoreNotEmpty otherwise); with merge=true into any store, creating only what is missing and never overwriting (docs/export.md).",
            inputs: fields![opt(
                "merge",
                Ty::Bool,
                "query parameter: import into a store that holds data, creating only what is missing"
            )],
            stream_body: Some("DumpLine"),
            answer: IMPORT_ANSWER,
            refusal: BULK_ANSWER,
            errors: &[StoreNotEmpty],
            ..base
        },
        RouteId::Calculate => Operation {
            id: "CalculatePurchase",
            summary: "Dry run of confirm: the same checks and Keys, no state change. A refusal still carries Number, Amount, BonusToPay and MaxBonusToPay.",
            inputs: fields![
                req("Number", Ty::Code, "card number"),
                req("Amount", Ty::Money, "purchase amount, above 0"),
                opt("BonusToPay", Ty::Money, "bonuses to write off, default 0"),
            ],
            answer: fields![
                req("Number", Ty::Str, ""),
                req("Amount", Ty::Money, ""),
                req("BonusToPay", Ty::Money, ""),
                opt("Accrual", Ty::Money, "bonuses this purchase would earn (not in a refusal)"),
                req("MaxBonusToPay", Ty::Money, "what may be written off at most (also in a refusal)"),
                opt("DiscountPercent", Ty::Money, "Discount card types (not in a refusal)"),
            ],
            refusal: fields![
                opt("Number", Ty::Str, ""),
                opt("Amount", Ty::Money, ""),
                opt("BonusToPay", Ty::Money, ""),
                opt(
                    "MaxBonusToPay",
                    Ty::Money,
                    "in the refusals of the rules (StatusError, InvalidAmount, InsufficientBonuses): what may be written off at most"
                ),
            ],
            errors: &[
                RequiredParameterNotSpecified,
                InvalidCardNumber,
                InvalidAmount,
                CannotFindCardNumber,
                StatusError,
                InsufficientBonuses,
            ],
            ..base
        },
        RouteId::Confirm => Operation {
            id: "ConfirmPurchase",
            summary: "Writes off BonusToPay and accrues; idempotent by PurchaseId (checked before any lookup or rule)",
            inputs: fields![
                req("Number", Ty::Code, "card number"),
                req("PurchaseId", Ty::Code, "1-128 visible ASCII characters; the idempotency key"),
                req("Amount", Ty::Money, "purchase amount, above 0"),
                opt("BonusToPay", Ty::Money, "bonuses to write off, default 0"),
                opt("Date", Ty::Date, "purchase date (offline tills): within the retention back, a day ahead"),
            ],
            answer: fields![
                req("Number", Ty::Str, ""),
                req("PurchaseId", Ty::Str, ""),
                req("Amount", Ty::Money, ""),
                req("BonusToPay", Ty::Money, ""),
                req("Accrual", Ty::Money, ""),
                req("AccrualActiveFrom", Ty::Date, ""),
                req("AccrualExpireDate", Ty::Date, ""),
                req("DiscountPercent", Ty::Money, ""),
            ],
            errors: &[
                RequiredParameterNotSpecified,
                InvalidCardNumber,
                InvalidParameter,
                InvalidAmount,
                IdempotencyConflict,
                CannotFindCardNumber,
                StatusError,
                InsufficientBonuses,
            ],
            ..base
        },
        RouteId::Cancel => Operation {
            id: "CancelPurchase",
            summary: "Reverses the whole purchase; idempotent",
            inputs: fields![req("PurchaseId", Ty::Code, "")],
            answer: REVERSAL,
            errors: &[RequiredParameterNotSpecified, PurchaseNotFound],
            ..base
        },
        RouteId::Refund => Operation {
            id: "RefundPurchase",
            summary: "Partial return: reverses accrual and write-off in proportion; idempotent by RefundId",
            inputs: fields![
                req("PurchaseId", Ty::Code, ""),
                req("RefundId", Ty::Code, "1-128 visible ASCII characters"),
                req("Amount", Ty::Money, "money returned, above 0, at most what is left"),
            ],
            answer: REVERSAL,
            errors: &[
                RequiredParameterNotSpecified,
                InvalidAmount,
                PurchaseNotFound,
                IdempotencyConflict,
            ],
            ..base
        },
        RouteId::ManualBonus => Operation {
            id: "AccrueBonus",
            summary: "Manual accrual (promotions, status bonuses); idempotent by OperationId",
            inputs: fields![
                req("Number", Ty::Code, "card number"),
                req("OperationId", Ty::Code, "1-128 visible ASCII characters"),
                req("Amount", Ty::Money, "above 0"),
                req("TypeCode", Ty::Code, "0 Cash, 1 Status"),
                opt("ActiveFrom", Ty::Date, "default today"),
                opt("ExpireDate", Ty::Date, "last usable day"),
                opt("Comment", Ty::Str, "at most 256 characters"),
            ],
            answer: fields![
                req("Number", Ty::Str, ""),
                req("OperationId", Ty::Str, ""),
                req("Amount", Ty::Money, ""),
                req("TypeCode", Ty::Code, ""),
                req("TypeName", Ty::Str, ""),
                req("ActiveFrom", Ty::Date, ""),
                null("ExpireDate", Ty::Date, ""),
            ],
            errors: &[
                RequiredParameterNotSpecified,
                InvalidCardNumber,
                InvalidParameter,
                InvalidAmount,
                CannotFindCardNumber,
                IdempotencyConflict,
                StatusError,
            ],
            ..base
        },
        RouteId::Transactions => Operation {
            id: "GetCardTransactions",
            summary: "The card's bonus ledger, newest first, paginated",
            path: NUMBER_PATH,
            inputs: PAGE,
            answer: fields![
                req("Items", Ty::List("Transaction"), "newest first"),
                PAGE_ANSWER[1],
            ],
            errors: &[InvalidCardNumber, CannotFindCardNumber],
            ..base
        },
        RouteId::Health => Operation {
            id: "Health",
            summary: "The process is up",
            ..base
        },
        RouteId::Ready => Operation {
            id: "Ready",
            summary: "The store answers",
            errors: &[StoreUnavailable],
            ..base
        },
        RouteId::Metrics => Operation {
            id: "Metrics",
            summary: "Prometheus text format",
            raw_answer: Some(("text/plain; version=0.0.4", "Prometheus metrics")),
            ..base
        },
        RouteId::OpenApi => Operation {
            id: "OpenApi",
            summary: "This document",
            raw_answer: Some(("application/json", "the OpenAPI 3.1 document")),
            ..base
        },
    }
}
