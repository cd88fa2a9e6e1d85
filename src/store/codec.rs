//! How a card, a contact or a history entry is stored in Redis (the `d`
//! field of a card's or contact's hash, an entry of a history list): a
//! version byte, then the record as a positional MessagePack array
//! (rmp-serde's compact form: no field names, integers for amounts and
//! dates). Every card is read and rewritten by each of its writes and ten
//! million of them sit in RAM, so the bytes count (docs/adr/0012).
//!
//! This is format 1, the first release's and the only one read. Positional
//! means the field order of the stored types (`Card`, `Ledger`, `Lot`,
//! `BlockInfo`, `Contact`, `HistoryEntry`) is the format: a change of it
//! follows the rule of docs/stored-formats.md (two releases).

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

/// The first byte of a record in this encoding.
pub const VERSION: u8 = 1;

/// The stored bytes of a card or contact.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    // Only the signature can fail: our types always serialise.
    rmp_serde::encode::write(&mut out, value).map_err(|e| StoreError::Corrupt {
        key: String::new(),
        reason: format!("cannot encode: {e}"),
    })?;
    Ok(out)
}

/// Reads a record in this encoding; `key` names it in the error.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    match bytes.first() {
        Some(&VERSION) => rmp_serde::from_slice(&bytes[1..]).map_err(|e| corrupt(e.to_string())),
        Some(other) => Err(corrupt(format!("unknown record encoding {other:#04x}"))),
        None => Err(corrupt("an empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::LotSource;
    use crate::domain::{
        BlockInfo, BlockReason, BonusType, Card, CardNumber, CardStatus, CardType, Category,
        Contact, ContactCode, Role,
    };
    use time::macros::{date, datetime};

    fn number(n: &str) -> CardNumber {
        CardNumber::from_trusted(n.into())
    }

    fn full_card() -> Card {
        let mut card = Card::new(number("4000000000001"), Category::Plastic, CardType::Bonus);
        card.status = CardStatus::Blocked;
        card.contact = Some(ContactCode::parse("C-1").expect("a code"));
        card.block = Some(BlockInfo {
            reason: BlockReason::Replacement,
            reason_name: Some("lost".into()),
            login: "till-1".into(),
            role: Role::CcOperator,
            at: datetime!(2026-11-28 10:11:12.345 UTC),
            previous: CardStatus::Active,
        });
        card.replaced_by = Some(number("4000000000002"));
        card.replaces = Some(number("4000000000003"));
        let amount = crate::domain::Amount::from_hundredths(12_345).expect("an amount");
        card.ledger.accrue(
            amount,
            BonusType::Cash,
            date!(2026 - 11 - 28),
            Some(date!(2027 - 11 - 28)),
            LotSource::Purchase,
        );
        card.ledger.accrue(
            amount,
            BonusType::Status,
            date!(2026 - 11 - 28),
            None,
            LotSource::Bonus,
        );
        card.ledger.burnt = [amount, amount];
        card.ledger.debt = amount;
        card.transfer_out = card.ledger.lots.clone();
        card.received_from = vec![number("4000000000004")];
        card.transfer_out_debt = amount;
        card.holds = vec![crate::domain::Hold {
            purchase_id: "P-1".into(),
            owner: "4000000000001#00000001".into(),
            amount,
            bonus: amount,
            lots: card.ledger.lots[..1].to_vec(),
            until: datetime!(2026-11-28 10:26:12 UTC),
        }];
        card
    }

    fn full_entry() -> crate::domain::HistoryEntry {
        use crate::domain::{BonusMovement, HistoryEntry, Operation};
        HistoryEntry {
            at: datetime!(2026-11-28 10:11:12.345 UTC),
            login: "till-1".into(),
            role: Role::Pos,
            operation: Operation::Refund,
            from: CardStatus::Active,
            to: CardStatus::Blocked,
            reason_code: Some(4),
            reason_name: Some("lost".into()),
            detail: Some("C-1".into()),
            bonus: Some(BonusMovement {
                reference: "R-1".into(),
                credited: crate::domain::Amount::from_hundredths(150).unwrap(),
                debited: crate::domain::Amount::from_hundredths(250).unwrap(),
                money: Some(crate::domain::Amount::from_hundredths(10_000).unwrap()),
                comment: Some("c".into()),
                debt: Some(crate::domain::Amount::from_hundredths(4_750).unwrap()),
            }),
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The bytes this version writes, pinned: a reordered field, a
    /// renumbered enum or another form of a type fails here — records
    /// already stored would read wrongly, often without any error.
    #[test]
    fn the_stored_bytes_are_pinned() {
        assert_eq!(hex(&encode(&full_card()).unwrap()), PINNED_CARD);
        assert_eq!(hex(&encode(&full_entry()).unwrap()), PINNED_ENTRY);
        let entry: crate::domain::HistoryEntry =
            decode("k", &encode(&full_entry()).unwrap()).unwrap();
        assert_eq!(entry, full_entry());
        let bytes: Vec<u8> = (0..PINNED_CARD_WITHOUT_HOLDS.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&PINNED_CARD_WITHOUT_HOLDS[i..i + 2], 16).unwrap())
            .collect();
        let before: Card = decode("k", &bytes).unwrap();
        let without_holds = Card {
            holds: Vec::new(),
            ..full_card()
        };
        assert_eq!(before, without_holds);
        // And a card without holds is still written so.
        assert_eq!(encode(&without_holds).unwrap(), bytes);
    }

    const PINNED_CARD: &str = concat!(
        "019dad34303030303030303030303031030000a3432d319604a46c6f7374a674",
        "696c6c2d310292ce6b0aa8c0ce1490484002ad34303030303030303030303032",
        "ad3430303030303030303030303393929500cd303992cd07eacd014c92cd07eb",
        "cd014c009501cd303992cd07eacd014cc00192cd3039cd3039cd3039929500cd",
        "303992cd07eacd014c92cd07ebcd014c009501cd303992cd07eacd014cc00191",
        "ad34303030303030303030303034cd30399196a3502d31b63430303030303030",
        "3030303031233030303030303031cd3039cd3039919500cd303992cd07eacd01",
        "4c92cd07ebcd014c0092ce6b0aac4400",
    );
    /// A card as stored before holds (issue 24) were added to format 1:
    /// it reads with none, and a card without holds is written so still.
    const PINNED_CARD_WITHOUT_HOLDS: &str = concat!(
        "019cad34303030303030303030303031030000a3432d319604a46c6f7374a674",
        "696c6c2d310292ce6b0aa8c0ce1490484002ad34303030303030303030303032",
        "ad3430303030303030303030303393929500cd303992cd07eacd014c92cd07eb",
        "cd014c009501cd303992cd07eacd014cc00192cd3039cd3039cd3039929500cd",
        "303992cd07eacd014c92cd07ebcd014c009501cd303992cd07eacd014cc00191",
        "ad34303030303030303030303034cd3039",
    );
    const PINNED_ENTRY: &str = concat!(
        "019a92ce6b0aa8c0ce14904840a674696c6c2d310008020304a46c6f7374a343",
        "2d3196a3522d31cc96ccfacd2710a163cd128e",
    );

    #[test]
    fn cards_round_trip() {
        for card in [
            Card::new(number("4000000000001"), Category::Plastic, CardType::Bonus),
            full_card(),
        ] {
            let bytes = encode(&card).unwrap();
            assert_eq!(bytes[0], VERSION);
            assert_eq!(decode::<Card>("k", &bytes).unwrap(), card);
        }
    }

    /// A record in any other encoding is corrupt, JSON included: nothing
    /// but format 1 was ever released.
    #[test]
    fn only_this_encoding_reads() {
        let json = serde_json::to_vec(&full_card()).unwrap();
        assert!(matches!(
            decode::<Card>("k", &json),
            Err(StoreError::Corrupt { .. })
        ));
        let mut other = encode(&full_card()).unwrap();
        other[0] = 2;
        assert!(matches!(
            decode::<Card>("k", &other),
            Err(StoreError::Corrupt { .. })
        ));
    }

    /// Every code of every enum reads back as itself, in the compact form
    /// and in JSON (the export's and the change stream's), by its name.
    #[test]
    fn enums_round_trip_by_code_and_by_name() {
        use crate::domain::Operation;
        fn both<T>(values: &[T], json: &[&str])
        where
            T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            for (v, name) in values.iter().zip(json) {
                let bytes = encode(v).unwrap();
                assert_eq!(bytes.len(), 2, "{v:?} is one byte");
                assert_eq!(&decode::<T>("k", &bytes).unwrap(), v);
                assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{name}\""));
                let back: T = serde_json::from_str(&format!("\"{name}\"")).unwrap();
                assert_eq!(&back, v);
            }
        }
        both(CardStatus::ALL, &["New", "Issued", "Active", "Blocked"]);
        both(CardType::ALL, &["Bonus", "Discount", "BonusDiscount"]);
        both(BonusType::ALL, &["Cash", "Status"]);
        both(Category::ALL, &["Plastic", "Virtual"]);
        both(
            &Role::ALL,
            &[
                "pos",
                "client",
                "cc_operator",
                "marketer",
                "senior_employee",
                "director",
                "administrator",
            ],
        );
        both(
            &[Operation::Issue, Operation::TransferIn, Operation::BindTo],
            &["Issue", "TransferIn", "BindTo"],
        );
        both(
            &[LotSource::Purchase, LotSource::Bonus, LotSource::Returned],
            &["purchase", "bonus", "returned"],
        );
    }

    #[test]
    fn a_new_card_is_a_few_bytes() {
        let card = Card::new(number("4000000000001"), Category::Plastic, CardType::Bonus);
        let bytes = encode(&card).unwrap();
        assert!(bytes.len() <= 48, "{} bytes", bytes.len());
    }

    #[test]
    fn contacts_round_trip_and_garbage_is_corrupt() {
        let contact = Contact {
            code: ContactCode::parse("C-1").unwrap(),
            name: "Ann".into(),
            mobile: None,
            email: String::new(),
            birth_date: String::new(),
            gender: String::new(),
            city: "Riga".into(),
            mobile_claim: Some("x".into()),
        };
        let bytes = encode(&contact).unwrap();
        assert_eq!(decode::<Contact>("k", &bytes).unwrap(), contact);
        for bad in [&b""[..], b"\x07abc", b"{no", b"\x01\xc1"] {
            assert!(matches!(
                decode::<Contact>("k", bad),
                Err(StoreError::Corrupt { .. })
            ));
        }
    }
}
