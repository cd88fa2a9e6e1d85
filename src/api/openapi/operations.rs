//! What each route takes, answers and refuses, for the OpenAPI document.
//! One exhaustive match over [`RouteId`]: a new route does not compile
//! until it is described here.

use crate::api::routes::RouteId;
use crate::domain::ErrorKey::{self, *};

/// What a field holds. Inputs carry the rules the server enforces (and the
/// Key a value that breaks them answers); outputs are plain JSON types, so
/// that a value added later (a new status code) does not break old clients.
#[derive(Clone, Copy)]
pub enum Ty {
    /// Any string (outputs).
    Str,
    /// Free text: at most 256 characters, no control characters.
    Text,
    /// Free text kept to its first 256 characters (a reason's name).
    Note,
    /// A card number: the configured pattern.
    CardNumber,
    /// A card number, or a contact code (the seed's balance path).
    CardNumberOrCode,
    /// A mobile number in any usual formatting, 10–15 digits.
    Mobile,
    /// A contact code: 1–64 of `A-Z a-z 0-9 _ -`.
    ContactCode,
    /// A caller's idempotency key: 1–128 visible ASCII characters.
    Id,
    /// A reference code (input): one of the listed values, else the Key.
    Code(&'static [&'static str], ErrorKey),
    /// Money or bonuses in an answer: a JSON number, at most 2 decimals.
    Money,
    /// Money or bonuses in a request: at most 2 decimals, at most 1e9;
    /// `positive` means above 0.
    Amount { positive: bool },
    /// A non-negative integer.
    Int,
    /// An integer of at least 1 (a hold's `HoldSecs`).
    PositiveInt,
    /// A yes/no flag (`true`/`false`).
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD`, or `""` to clear it.
    DateOrEmpty,
    /// RFC 3339 UTC.
    Time,
    /// A page cursor, in and out: decimal digits in a string.
    Cursor,
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
    /// The value in the request body's example; `None` leaves the field
    /// out of it.
    pub example: Option<&'static str>,
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required: true,
        nullable: false,
        doc,
        example: None,
    }
}

const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        required: false,
        ..req(name, ty, doc)
    }
}

const fn null(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        nullable: true,
        ..req(name, ty, doc)
    }
}

/// An input field with the JSON text of its example value.
const fn ex(field: Field, example: &'static str) -> Field {
    Field {
        example: Some(example),
        ..field
    }
}

/// A named answer schema: the envelope's `Status`, `Key`, `Value`, then
/// these fields.
#[derive(Clone, Copy)]
pub struct Answer {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// A named refusal schema: the error envelope and the fields a refusal of
/// some statuses carries (when it has them).
#[derive(Clone, Copy)]
pub struct Refusal {
    pub name: &'static str,
    pub fields: &'static [Field],
    pub statuses: &'static [u16],
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
    /// The answer after `Status`, `Key`, `Value`.
    pub answer: Answer,
    /// What a refusal carries after the envelope, when it has more.
    pub refusal: Option<Refusal>,
    /// The answer is not the envelope (metrics text, the export, the
    /// document itself): its media type, what it is, and whether it is
    /// JSON (else a byte stream).
    pub raw_answer: Option<(&'static str, &'static str, bool)>,
    /// Keys this route's own checks answer (the dispatcher's — credentials,
    /// role, body, store, routing — are added by the document).
    pub errors: &'static [ErrorKey],
}

/// A `'static` slice of fields built by the const constructors.
macro_rules! fields {
    ($($f:expr),* $(,)?) => {{
        const FIELDS: &[Field] = &[$($f),*];
        FIELDS
    }};
}

pub const BLOCK_REASONS: &[&str] = &["0", "1", "2", "3", "4"];
pub const UNBLOCK_REASONS: &[&str] = &["0", "1", "2", "3"];
const BONUS_TYPES: &[&str] = &["0", "1"];
pub const CATEGORIES: &[&str] = &["0", "1"];
pub const CARD_TYPES: &[&str] = &["0", "1", "2"];

const OK: Answer = Answer {
    name: "Ok",
    fields: &[],
};
const NUMBER_PATH: &[Field] = &[req("number", Ty::CardNumber, "card number")];
const PAGE: &[Field] = &[
    opt(
        "limit",
        Ty::Int,
        "items per page, default 50; 0 reads as 1 and anything above 500 as 500",
    ),
    opt(
        "cursor",
        Ty::Cursor,
        "`NextCursor` of the previous page, passed back as it came",
    ),
];
const NEXT_CURSOR: Field = null(
    "NextCursor",
    Ty::Cursor,
    "cursor of the next (older) page, to pass back as `cursor`; null on the last",
);
const HISTORY_PAGE: Answer = Answer {
    name: "HistoryPage",
    fields: fields![
        req("Items", Ty::List("HistoryEntry"), "newest first"),
        NEXT_CURSOR,
        opt(
            "OlderEntriesArchived",
            Ty::Bool,
            "present (true) only on the last page this server can read when older entries were moved to the archive and no archive is configured to read them from",
        ),
    ],
};
const TRANSACTION_PAGE: Answer = Answer {
    name: "TransactionPage",
    fields: fields![
        req("Items", Ty::List("Transaction"), "newest first"),
        NEXT_CURSOR,
    ],
};
const BALANCE: Answer = Answer {
    name: "Balance",
    fields: fields![
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
            Ty::Str,
            "card status: 0 New, 1 Issued, 2 Active, 3 Blocked",
        ),
        req("StatusName", Ty::Str, "card status name"),
        req("CategoryCode", Ty::Str, "0 Plastic, 1 Virtual"),
        req("CategoryName", Ty::Str, "card category name"),
        req("TypeCode", Ty::Str, "0 Bonus, 1 Discount, 2 Bonus/Discount"),
        req("TypeName", Ty::Str, "card type name"),
        req(
            "Bonuses",
            Ty::List("BonusesInfo"),
            "one entry per bonus status and type above zero",
        ),
        opt("BlockReasonCode", Ty::Str, "only while Blocked"),
        opt("BlockReasonName", Ty::Str, "only while Blocked"),
        opt("ReplacedBy", Ty::Str, "only for a card replaced by another"),
        opt(
            "Debt",
            Ty::Money,
            "only while above 0: bonuses a cancel or refund could not take back (their accrual was spent); every later credit pays it first, and a replacement card carries it",
        ),
    ],
};
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
const REVERSAL: Answer = Answer {
    name: "Reversal",
    fields: fields![
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
            "spent accrual the balance could not cover: added to the card's Debt",
        ),
        req("RefundedTotal", Ty::Money, "money refunded so far"),
    ],
};
const CARD_CHECKS: &[ErrorKey] = &[
    RequiredParameterNotSpecified,
    InvalidCardNumber,
    CannotFindCardNumber,
    StatusError,
];
const NUMBER_IN: Field = ex(
    req("Number", Ty::CardNumber, "card number"),
    "\"7000000000001\"",
);
const BLOCK_INPUTS: &[Field] = &[
    ex(
        opt(
            "Number",
            Ty::CardNumber,
            "card number; this or ContactMobileNumber is required",
        ),
        "\"7000000000001\"",
    ),
    opt(
        "ContactMobileNumber",
        Ty::Mobile,
        "acts on the contact's current card (the one not blocked for replacement)",
    ),
];

const BULK_FIELDS: &[Field] = &[
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
const BULK_ANSWER: Answer = Answer {
    name: "BulkResult",
    fields: BULK_FIELDS,
};
/// A load stopped part-way (the store went away) or refused whole tells
/// the counts so far, when there are any.
const BULK_REFUSAL: Refusal = Refusal {
    name: "BulkRefusal",
    fields: BULK_FIELDS,
    statuses: &[400, 409, 503],
};
const IMPORT_ANSWER: Answer = Answer {
    name: "ImportResult",
    fields: fields![
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
    ],
};
const AMOUNT_IN: Field = ex(
    req("Amount", Ty::Amount { positive: true }, "purchase amount"),
    "1500.50",
);
const BONUS_TO_PAY_IN: Field = ex(
    opt(
        "BonusToPay",
        Ty::Amount { positive: false },
        "bonuses to write off, default 0; at most Amount and MaxBonusToPay",
    ),
    "0",
);

pub fn operation(id: RouteId) -> Operation {
    let base = Operation {
        id: "",
        summary: "",
        path: fields![],
        inputs: fields![],
        array_body: None,
        stream_body: None,
        answer: OK,
        refusal: None,
        raw_answer: None,
        errors: &[],
    };
    match id {
        RouteId::BalanceByNumber => Operation {
            id: "GetBalanceByCardNumber",
            summary: "Balance by card number. A segment that is no valid card number but an existing contact's code answers that contact's balance (the seed's /balance/by/{code}).",
            path: fields![req("number", Ty::CardNumberOrCode, "card number (or, for tills built on the seed, a contact code)")],
            answer: BALANCE,
            errors: &[InvalidCardNumber, CannotFindCardNumber, CannotFindContactCode],
            ..base
        },
        RouteId::BalanceByPhone => Operation {
            id: "GetBalanceByMobileNumber",
            summary: "Balance of the card of the contact owning the mobile number",
            path: fields![req("phone", Ty::Mobile, "mobile number, any usual formatting")],
            answer: BALANCE,
            errors: &[InvalidMobileNumber, CannotFindMobileNumber],
            ..base
        },
        RouteId::BalanceByCode => Operation {
            id: "GetBalanceByContactCode",
            summary: "Balance of the contact's current card",
            path: fields![req("code", Ty::ContactCode, "contact code")],
            answer: BALANCE,
            errors: &[InvalidContactCode, CannotFindContactCode],
            ..base
        },
        RouteId::Issue => Operation {
            id: "Issue",
            summary: "New → Issued (the card was sold)",
            inputs: fields![NUMBER_IN],
            errors: CARD_CHECKS,
            ..base
        },
        RouteId::BindTo => Operation {
            id: "BindTo",
            summary: "Binds an Issued card to the contact found by mobile number",
            inputs: fields![
                NUMBER_IN,
                ex(req("MobileNumber", Ty::Mobile, "the contact's mobile number"), "\"+7 (916) 123-45-67\""),
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
            inputs: fields![NUMBER_IN],
            errors: CARD_CHECKS,
            ..base
        },
        RouteId::Block => Operation {
            id: "Block",
            summary: "Issued (bound) or Active → Blocked",
            inputs: fields![
                BLOCK_INPUTS[0],
                BLOCK_INPUTS[1],
                ex(req("BlockReasonCode", Ty::Code(BLOCK_REASONS, BlockReasonError), "0 lost, 1 unwanted, 2 blacklist, 3 refusal, 4 replacement"), "\"0\""),
                ex(opt("BlockReasonName", Ty::Note, "informative; kept in the history (its first 256 characters)"), "\"lost at the till\""),
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
                ex(req("UnBlockReasonCode", Ty::Code(UNBLOCK_REASONS, UnBlockReasonError), "0 found, 1 exit unwanted, 2 exit blacklist, 3 restore after refusal"), "\"0\""),
                opt("UnBlockReasonName", Ty::Note, "informative; kept in the history (its first 256 characters)"),
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
            answer: HISTORY_PAGE,
            errors: &[InvalidCardNumber, CannotFindCardNumber],
            ..base
        },
        RouteId::ContactUpsert => Operation {
            id: "UpsertContact",
            summary: "Creates or updates one contact (absent fields are kept, \"\" clears)",
            inputs: fields![
                ex(opt("Code", Ty::ContactCode, "generated when absent"), "\"DEMO-3\""),
                ex(opt("Name", Ty::Text, ""), "\"Olga Ivanova\""),
                ex(opt("MobileNumber", Ty::Mobile, "required to create a contact"), "\"+7 (903) 555-01-02\""),
                opt("Email", Ty::Text, ""),
                ex(opt("BirthDate", Ty::DateOrEmpty, "\"\" clears it"), "\"1985-03-21\""),
                opt("Gender", Ty::Text, ""),
                opt("City", Ty::Text, ""),
            ],
            answer: Answer {
                name: "ContactSaved",
                fields: fields![
                    CONTACT[0], CONTACT[1], CONTACT[2], CONTACT[3], CONTACT[4], CONTACT[5],
                    CONTACT[6], CONTACT[7],
                    req("Created", Ty::Bool, "whether this call created the contact"),
                ],
            },
            errors: &[
                RequiredParameterNotSpecified,
                InvalidContactCode,
                InvalidMobileNumber,
                InvalidParameter,
                MobileNumberBelongsToAnotherContact,
            ],
            ..base
        },
        RouteId::ContactGet => Operation {
            id: "GetContact",
            summary: "The contact with its current card",
            path: fields![req("code", Ty::ContactCode, "contact code")],
            answer: Answer {
                name: "Contact",
                fields: CONTACT,
            },
            errors: &[InvalidContactCode, CannotFindContactCode],
            ..base
        },
        RouteId::AdminCards => Operation {
            id: "LoadCards",
            summary: "Creates cards in New; existing cards keep their status. A JSON array (read whole, within the admin body limit) never changes an existing card; NDJSON (`application/x-ndjson`, streamed, any size) also sets the category and type of a card that is still New (`Updated`). A rejected line never stops the load.",
            array_body: Some("CardLine"),
            answer: BULK_ANSWER,
            refusal: Some(BULK_REFUSAL),
            errors: &[RequestTimeout],
            ..base
        },
        RouteId::AdminContacts => Operation {
            id: "LoadContacts",
            summary: "Creates or updates contacts as POST /api/contact does (a mobile number of another contact is a rejected line, MobileNumberBelongsToAnotherContact); a line's CardNumber is issued if New and bound to the contact, and with Activate also activated. A JSON array or NDJSON; lines run concurrently.",
            array_body: Some("ContactLine"),
            answer: BULK_ANSWER,
            refusal: Some(BULK_REFUSAL),
            errors: &[RequestTimeout],
            ..base
        },
        RouteId::AdminExport => Operation {
            id: "Export",
            summary: "NDJSON dump of every card (with its history), card record (purchases, operation outcomes, with their time left), contact and index entry: a header line, the records, an end line with the counts (docs/export.md). Streamed; an error part-way ends it with an `error` line and no end line.",
            raw_answer: Some(("application/x-ndjson", "the dump, one DumpLine per line", false)),
            ..base
        },
        RouteId::AdminImport => Operation {
            id: "Import",
            summary: "Loads an export into an empty store (StoreNotEmpty otherwise); with merge=true into any store, creating only what is missing and never overwriting (docs/export.md).",
            inputs: fields![opt(
                "merge",
                Ty::Bool,
                "import into a store that holds data, creating only what is missing"
            )],
            stream_body: Some("DumpLine"),
            answer: IMPORT_ANSWER,
            refusal: Some(BULK_REFUSAL),
            errors: &[StoreNotEmpty, InvalidParameter, RequestTimeout],
            ..base
        },
        RouteId::Calculate => Operation {
            id: "CalculatePurchase",
            summary: "Dry run of confirm: the same checks and Keys, no state change. A refusal of the rules still carries Number, Amount, BonusToPay and MaxBonusToPay.",
            inputs: fields![NUMBER_IN, AMOUNT_IN, BONUS_TO_PAY_IN],
            answer: Answer {
                name: "Calculation",
                fields: fields![
                    req("Number", Ty::Str, ""),
                    req("Amount", Ty::Money, ""),
                    req("BonusToPay", Ty::Money, ""),
                    req("Accrual", Ty::Money, "bonuses this purchase would earn"),
                    req("MaxBonusToPay", Ty::Money, "what may be written off at most"),
                    req("DiscountPercent", Ty::Money, "Discount card types, else 0"),
                ],
            },
            refusal: Some(Refusal {
                name: "CalculationRefusal",
                fields: fields![
                    opt("Number", Ty::Str, ""),
                    opt("Amount", Ty::Money, ""),
                    opt("BonusToPay", Ty::Money, ""),
                    opt(
                        "MaxBonusToPay",
                        Ty::Money,
                        "in the refusals of the rules (StatusError, InvalidAmount, InsufficientBonuses): what may be written off at most"
                    ),
                ],
                statuses: &[400, 409],
            }),
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
                NUMBER_IN,
                ex(req("PurchaseId", Ty::Id, "the idempotency key"), "\"till-7-receipt-000123\""),
                AMOUNT_IN,
                BONUS_TO_PAY_IN,
                opt("Date", Ty::Date, "purchase date (offline tills): within the retention back, a day ahead; default today"),
            ],
            answer: Answer {
                name: "Confirmation",
                fields: fields![
                    req("Number", Ty::Str, ""),
                    req("PurchaseId", Ty::Str, ""),
                    req("Amount", Ty::Money, ""),
                    req("BonusToPay", Ty::Money, ""),
                    req("Accrual", Ty::Money, ""),
                    req("AccrualActiveFrom", Ty::Date, ""),
                    req("AccrualExpireDate", Ty::Date, ""),
                    req("DiscountPercent", Ty::Money, ""),
                ],
            },
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
        RouteId::Hold => Operation {
            id: "HoldPurchase",
            summary: "Reserves BonusToPay while the customer pays: confirm's checks in confirm's order, then the bonuses are Held (not Active) until the confirm of the same PurchaseId writes them off, a release frees them, or HeldUntil passes; idempotent by PurchaseId",
            inputs: fields![
                NUMBER_IN,
                ex(req("PurchaseId", Ty::Id, "the purchase's idempotency key, which its confirm then names"), "\"till-7-receipt-000123\""),
                AMOUNT_IN,
                ex(
                    req(
                        "BonusToPay",
                        Ty::Amount { positive: false },
                        "bonuses to reserve; at most Amount and MaxBonusToPay",
                    ),
                    "100",
                ),
                opt("Date", Ty::Date, "purchase date, as confirm's"),
                opt("HoldSecs", Ty::PositiveInt, "the hold's life in seconds, at least 1; default bonus.hold_secs, capped by bonus.hold_max_secs"),
            ],
            answer: Answer {
                name: "HoldAnswer",
                fields: fields![
                    req("Number", Ty::Str, ""),
                    req("PurchaseId", Ty::Str, ""),
                    req("Amount", Ty::Money, ""),
                    req("BonusToPay", Ty::Money, "bonuses held"),
                    req("Accrual", Ty::Money, "bonuses the purchase would earn"),
                    req("MaxBonusToPay", Ty::Money, "what could be written off at most when the hold was taken"),
                    req("DiscountPercent", Ty::Money, "Discount card types, else 0"),
                    req("HeldUntil", Ty::Time, "when the hold ends by itself: from then on its bonuses are Active again"),
                ],
            },
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
        RouteId::Release => Operation {
            id: "ReleaseHold",
            summary: "Frees an open hold; idempotent. Refused (IdempotencyConflict) once its purchase is confirmed: reverse it with cancel. After HeldUntil it succeeds with nothing to free.",
            inputs: fields![ex(req("PurchaseId", Ty::Id, ""), "\"till-7-receipt-000123\"")],
            answer: Answer {
                name: "ReleaseAnswer",
                fields: fields![
                    req("Number", Ty::Str, ""),
                    req("PurchaseId", Ty::Str, ""),
                    req("Released", Ty::Money, "bonuses this release made Active again (0: the hold had expired or was released before)"),
                ],
            },
            errors: &[
                RequiredParameterNotSpecified,
                InvalidParameter,
                PurchaseNotFound,
                IdempotencyConflict,
            ],
            ..base
        },
        RouteId::Cancel => Operation {
            id: "CancelPurchase",
            summary: "Reverses the whole purchase; idempotent",
            inputs: fields![ex(req("PurchaseId", Ty::Id, ""), "\"till-7-receipt-000123\"")],
            answer: REVERSAL,
            errors: &[RequiredParameterNotSpecified, InvalidParameter, PurchaseNotFound],
            ..base
        },
        RouteId::Refund => Operation {
            id: "RefundPurchase",
            summary: "Partial return: reverses accrual and write-off in proportion; idempotent by RefundId",
            inputs: fields![
                ex(req("PurchaseId", Ty::Id, ""), "\"till-7-receipt-000123\""),
                ex(req("RefundId", Ty::Id, "idempotency key of this refund"), "\"till-7-return-000045\""),
                ex(req("Amount", Ty::Amount { positive: true }, "money returned, at most what is left"), "250"),
            ],
            answer: REVERSAL,
            errors: &[
                RequiredParameterNotSpecified,
                InvalidParameter,
                InvalidAmount,
                PurchaseNotFound,
                IdempotencyConflict,
            ],
            ..base
        },
        RouteId::ManualBonus => Operation {
            id: "AccrueBonus",
            summary: "Manual accrual (promotions, status bonuses); idempotent by OperationId per card",
            inputs: fields![
                NUMBER_IN,
                ex(req("OperationId", Ty::Id, "idempotency key, scoped to the card: one promotion id may credit many cards, each once (a replacement card counts as the card it replaced)"), "\"promo-2026-spring-000001\""),
                ex(req("Amount", Ty::Amount { positive: true }, ""), "100"),
                ex(req("TypeCode", Ty::Code(BONUS_TYPES, InvalidParameter), "0 Cash, 1 Status"), "\"0\""),
                opt("ActiveFrom", Ty::Date, "default today"),
                opt("ExpireDate", Ty::Date, "last usable day, not before today (default ActiveFrom + bonus.expiry_days, which must not be before today either)"),
                ex(opt("Comment", Ty::Text, ""), "\"spring promotion\""),
            ],
            answer: Answer {
                name: "BonusAccrual",
                fields: fields![
                    req("Number", Ty::Str, ""),
                    req("OperationId", Ty::Str, ""),
                    req("Amount", Ty::Money, ""),
                    req("TypeCode", Ty::Str, "0 Cash, 1 Status"),
                    req("TypeName", Ty::Str, ""),
                    req("ActiveFrom", Ty::Date, ""),
                    null("ExpireDate", Ty::Date, ""),
                ],
            },
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
            answer: TRANSACTION_PAGE,
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
            summary: "Prometheus text format; anonymous unless metrics.bearer_token_sha256 is set (then Authorization: Bearer)",
            errors: &[Unauthorized],
            raw_answer: Some(("text/plain; version=0.0.4", "Prometheus metrics", false)),
            ..base
        },
        RouteId::OpenApi => Operation {
            id: "OpenApi",
            summary: "This document",
            raw_answer: Some(("application/json", "the OpenAPI 3.1 document", true)),
            ..base
        },
    }
}
