//! Forwarding a concern of the store to another store, every method of it:
//! `forward_cards!(Wrapper, |s| s.inner)` implements [`super::CardStore`]
//! for `Wrapper` by calling the same method on `s.inner` (any expression of
//! `s`, the wrapper; `?` is allowed, for a store that may not be there
//! yet). With a third argument, each call goes through it as
//! `wrap("method_name", future)` (the instrumented store times them).
//!
//! Each macro names every method of its trait once: a method added to a
//! trait and not to its macro fails to compile wherever the macro is used,
//! and a wrapper that writes a concern by hand must write all of it (no
//! trait method has a default). A wrapper that changes one method of a
//! concern writes that concern by hand and forwards the others.

pub use async_trait::async_trait;

/// The call itself: for a forward that adds nothing.
pub async fn direct<T>(_operation: &'static str, call: impl std::future::Future<Output = T>) -> T {
    call.await
}

/// Forwards [`super::HealthStore`].
#[macro_export]
macro_rules! forward_health {
    ($ty:ty, |$s:ident| $inner:expr) => {
        $crate::forward_health!($ty, |$s| $inner, $crate::store::forward::direct);
    };
    ($ty:ty, |$s:ident| $inner:expr, $wrap:path) => {
        #[$crate::store::forward::async_trait]
        impl $crate::store::HealthStore for $ty {
            async fn ping(&self) -> ::std::result::Result<(), $crate::store::StoreError> {
                let $s = self;
                $wrap("ping", $inner.ping()).await
            }
            async fn replicated(
                &self,
                number: &$crate::domain::CardNumber,
            ) -> ::std::result::Result<(), $crate::store::StoreError> {
                let $s = self;
                $wrap("replicated", $inner.replicated(number)).await
            }
            fn coherence(&self) -> ::std::option::Option<&$crate::store::Coherence> {
                let $s = self;
                $inner.coherence()
            }
        }
    };
}

/// Forwards [`super::CardStore`].
#[macro_export]
macro_rules! forward_cards {
    ($ty:ty, |$s:ident| $inner:expr) => {
        $crate::forward_cards!($ty, |$s| $inner, $crate::store::forward::direct);
    };
    ($ty:ty, |$s:ident| $inner:expr, $wrap:path) => {
        #[$crate::store::forward::async_trait]
        impl $crate::store::CardStore for $ty {
            async fn get_card(
                &self,
                number: &$crate::domain::CardNumber,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::store::Versioned<$crate::domain::Card>>,
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap("get_card", $inner.get_card(number)).await
            }
            async fn update_card(
                &self,
                card: &$crate::domain::Card,
                expected_version: u64,
                entry: &$crate::domain::HistoryEntry,
            ) -> ::std::result::Result<$crate::store::Cas, $crate::store::StoreError> {
                let $s = self;
                $wrap(
                    "update_card",
                    $inner.update_card(card, expected_version, entry),
                )
                .await
            }
            async fn update_card_with(
                &self,
                card: &$crate::domain::Card,
                expected_version: u64,
                entry: ::std::option::Option<&$crate::domain::HistoryEntry>,
                records: &[$crate::store::CardRecordWrite],
                ttl_secs: u64,
            ) -> ::std::result::Result<$crate::store::Cas, $crate::store::StoreError> {
                let $s = self;
                $wrap(
                    "update_card_with",
                    $inner.update_card_with(card, expected_version, entry, records, ttl_secs),
                )
                .await
            }
            async fn commit_purchase(
                &self,
                write: &$crate::store::PurchaseWrite<'_>,
            ) -> ::std::result::Result<$crate::store::PurchaseCommit, $crate::store::StoreError>
            {
                let $s = self;
                $wrap("commit_purchase", $inner.commit_purchase(write)).await
            }
            async fn card_history(
                &self,
                number: &$crate::domain::CardNumber,
                before: ::std::option::Option<u64>,
                limit: usize,
            ) -> ::std::result::Result<$crate::store::HistoryPage, $crate::store::StoreError> {
                let $s = self;
                $wrap("card_history", $inner.card_history(number, before, limit)).await
            }
        }
    };
}

/// Forwards [`super::RecordStore`].
#[macro_export]
macro_rules! forward_records {
    ($ty:ty, |$s:ident| $inner:expr) => {
        $crate::forward_records!($ty, |$s| $inner, $crate::store::forward::direct);
    };
    ($ty:ty, |$s:ident| $inner:expr, $wrap:path) => {
        #[$crate::store::forward::async_trait]
        impl $crate::store::RecordStore for $ty {
            async fn get_card_record(
                &self,
                number: &$crate::domain::CardNumber,
                key: &str,
            ) -> ::std::result::Result<::std::option::Option<String>, $crate::store::StoreError>
            {
                let $s = self;
                $wrap("get_card_record", $inner.get_card_record(number, key)).await
            }
            async fn get_card_with_record(
                &self,
                number: &$crate::domain::CardNumber,
                key: &str,
            ) -> ::std::result::Result<
                (
                    ::std::option::Option<$crate::store::Versioned<$crate::domain::Card>>,
                    ::std::option::Option<$crate::store::RecordRead>,
                ),
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap(
                    "get_card_with_record",
                    $inner.get_card_with_record(number, key),
                )
                .await
            }
        }
    };
}

/// Forwards [`super::ContactStore`].
#[macro_export]
macro_rules! forward_contacts {
    ($ty:ty, |$s:ident| $inner:expr) => {
        $crate::forward_contacts!($ty, |$s| $inner, $crate::store::forward::direct);
    };
    ($ty:ty, |$s:ident| $inner:expr, $wrap:path) => {
        #[$crate::store::forward::async_trait]
        impl $crate::store::ContactStore for $ty {
            async fn get_contact(
                &self,
                code: &$crate::domain::ContactCode,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::store::Versioned<$crate::domain::Contact>>,
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap("get_contact", $inner.get_contact(code)).await
            }
            async fn get_contact_cached(
                &self,
                code: &$crate::domain::ContactCode,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::store::Versioned<$crate::domain::Contact>>,
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap("get_contact_cached", $inner.get_contact_cached(code)).await
            }
            async fn get_contact_slot(
                &self,
                code: &$crate::domain::ContactCode,
            ) -> ::std::result::Result<
                $crate::store::Versioned<::std::option::Option<$crate::domain::Contact>>,
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap("get_contact_slot", $inner.get_contact_slot(code)).await
            }
            async fn put_contact(
                &self,
                contact: &$crate::domain::Contact,
                expected_version: u64,
            ) -> ::std::result::Result<$crate::store::Cas, $crate::store::StoreError> {
                let $s = self;
                $wrap("put_contact", $inner.put_contact(contact, expected_version)).await
            }
            async fn fence_contact(
                &self,
                code: &$crate::domain::ContactCode,
                expected_version: u64,
            ) -> ::std::result::Result<$crate::store::Cas, $crate::store::StoreError> {
                let $s = self;
                $wrap(
                    "fence_contact",
                    $inner.fence_contact(code, expected_version),
                )
                .await
            }
            async fn index_get(
                &self,
                index: $crate::store::Index,
                key: &str,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::store::Claim>,
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap("index_get", $inner.index_get(index, key)).await
            }
            async fn index_get_cached(
                &self,
                index: $crate::store::Index,
                key: &str,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::store::Claim>,
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap("index_get_cached", $inner.index_get_cached(index, key)).await
            }
            async fn index_claim(
                &self,
                index: $crate::store::Index,
                key: &str,
                expected: ::std::option::Option<&str>,
                owner: &str,
            ) -> ::std::result::Result<
                ::std::result::Result<(), ::std::option::Option<$crate::store::Claim>>,
                $crate::store::StoreError,
            > {
                let $s = self;
                $wrap(
                    "index_claim",
                    $inner.index_claim(index, key, expected, owner),
                )
                .await
            }
            async fn index_release(
                &self,
                index: $crate::store::Index,
                key: &str,
                owner: &str,
            ) -> ::std::result::Result<(), $crate::store::StoreError> {
                let $s = self;
                $wrap("index_release", $inner.index_release(index, key, owner)).await
            }
        }
    };
}

/// Forwards [`super::BulkStore`].
#[macro_export]
macro_rules! forward_bulk {
    ($ty:ty, |$s:ident| $inner:expr) => {
        $crate::forward_bulk!($ty, |$s| $inner, $crate::store::forward::direct);
    };
    ($ty:ty, |$s:ident| $inner:expr, $wrap:path) => {
        #[$crate::store::forward::async_trait]
        impl $crate::store::BulkStore for $ty {
            async fn insert_cards(
                &self,
                cards: &[$crate::domain::Card],
            ) -> ::std::result::Result<Vec<bool>, $crate::store::StoreError> {
                let $s = self;
                $wrap("insert_cards", $inner.insert_cards(cards)).await
            }
            async fn load_cards(
                &self,
                cards: &[$crate::domain::Card],
            ) -> ::std::result::Result<Vec<$crate::store::CardLoad>, $crate::store::StoreError>
            {
                let $s = self;
                $wrap("load_cards", $inner.load_cards(cards)).await
            }
            async fn dump_page(
                &self,
                cursor: ::std::option::Option<&str>,
                count: usize,
            ) -> ::std::result::Result<$crate::store::DumpPage, $crate::store::StoreError> {
                let $s = self;
                $wrap("dump_page", $inner.dump_page(cursor, count)).await
            }
            async fn restore_card(
                &self,
                card: &$crate::domain::Card,
                history: &[$crate::domain::HistoryEntry],
            ) -> ::std::result::Result<bool, $crate::store::StoreError> {
                let $s = self;
                $wrap("restore_card", $inner.restore_card(card, history)).await
            }
            async fn restore_record(
                &self,
                number: &$crate::domain::CardNumber,
                key: &str,
                value: &str,
                ttl_ms: ::std::option::Option<i64>,
            ) -> ::std::result::Result<bool, $crate::store::StoreError> {
                let $s = self;
                $wrap(
                    "restore_record",
                    $inner.restore_record(number, key, value, ttl_ms),
                )
                .await
            }
        }
    };
}

/// Forwards every concern: a wrapper that changes nothing (yet).
#[macro_export]
macro_rules! forward_all {
    ($ty:ty, |$s:ident| $inner:expr $(, $wrap:path)?) => {
        $crate::forward_health!($ty, |$s| $inner $(, $wrap)?);
        $crate::forward_cards!($ty, |$s| $inner $(, $wrap)?);
        $crate::forward_records!($ty, |$s| $inner $(, $wrap)?);
        $crate::forward_contacts!($ty, |$s| $inner $(, $wrap)?);
        $crate::forward_bulk!($ty, |$s| $inner $(, $wrap)?);
    };
}
