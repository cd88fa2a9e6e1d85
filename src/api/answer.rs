//! What a handler answers: the envelope's fields, or a response of its own
//! (the export stream, `/metrics`, the OpenAPI document).

use actix_web::HttpResponse;

use super::views::Fields;

pub enum Answer {
    /// Rendered by the dispatcher into the envelope of docs/api.md §1.1.
    Fields(Fields),
    /// Sent as it is.
    Response(HttpResponse),
}
