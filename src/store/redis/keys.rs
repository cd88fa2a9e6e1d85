//! The key schema (docs/redis.md). A configurable prefix sits outside the
//! hash tag so that several applications (or test runs) share one Redis;
//! the hash tag holds the record's identity, so all keys of one card land in
//! one cluster slot and a script may touch them together.

use super::slots;
use crate::store::Index;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Hash: `v` (version), `d` (the card, src/store/codec.rs).
    pub fn card(&self, number: &str) -> String {
        format!("{}:card:{{{number}}}", self.prefix)
    }

    /// The card number of a card's own key (`card`), `None` for any other
    /// key (its history, its records, anything else): what the tracking
    /// channel reports to the owners of decoded cards.
    pub fn card_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = key.strip_prefix(self.prefix.as_str())?;
        let number = rest.strip_prefix(":card:{")?.strip_suffix('}')?;
        (!number.contains(['{', '}'])).then_some(number)
    }

    /// List of history entries (src/store/codec.rs), oldest first: the
    /// index is the entry's sequence number.
    pub fn history(&self, number: &str) -> String {
        format!("{}:card:{{{number}}}:history", self.prefix)
    }

    /// Hash of the records kept with the card (idempotency outcomes,
    /// purchases), one field per record, each with its own expiry
    /// (lua/records.lua): in the card's slot so that one script writes
    /// them together with the card.
    pub fn card_records(&self, number: &str) -> String {
        format!("{}:card:{{{number}}}:recs", self.prefix)
    }

    /// The change stream of the card's cluster slot (docs/events.md): a
    /// script that changes the card appends its event here, so the stream
    /// must be in the card's slot; its hash tag is one chosen to land there.
    pub fn events(&self, number: &str) -> String {
        self.events_of_slot(slots::slot_of_tag(number))
    }

    /// The change stream of one cluster slot.
    pub fn events_of_slot(&self, slot: u16) -> String {
        format!("{}:events:{{{}}}", self.prefix, slots::tag_for_slot(slot))
    }

    /// Hash: `v` (version), `d` (the contact, src/store/codec.rs).
    pub fn contact(&self, code: &str) -> String {
        format!("{}:contact:{{{code}}}", self.prefix)
    }

    /// Hash: `owner`, `since` (ms since the epoch).
    pub fn index(&self, index: Index, key: &str) -> String {
        match index {
            Index::Mobile => format!("{}:mobile:{{{key}}}", self.prefix),
            Index::ContactCard => format!("{}:contact-card:{{{key}}}", self.prefix),
            Index::Purchase => format!("{}:purchase:{{{key}}}", self.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot is computed from the text between the first `{` and the
    /// next `}`: both keys of a card must yield the same tag.
    fn tag(key: &str) -> &str {
        let open = key.find('{').expect("a hash tag");
        let close = key[open..].find('}').expect("a closing brace") + open;
        &key[open + 1..close]
    }

    #[test]
    fn card_keys_share_their_hash_tag() {
        let k = Keys::new("loyalty");
        assert_eq!(k.card("4000000000001"), "loyalty:card:{4000000000001}");
        assert_eq!(
            k.history("4000000000001"),
            "loyalty:card:{4000000000001}:history"
        );
        assert_eq!(tag(&k.card("42")), tag(&k.history("42")));
        assert_eq!(k.card_of(&k.card("42")), Some("42"));
        assert_eq!(k.card_of(&k.history("42")), None);
        assert_eq!(k.card_of(&k.card_records("42")), None);
        assert_eq!(k.card_of(&k.contact("42")), None);
        assert_eq!(Keys::new("loyalty2").card_of(&k.card("42")), None);
        assert_eq!(tag(&k.card("42")), tag(&k.card_records("42")));
        assert_eq!(
            k.index(Index::Mobile, "79001234567"),
            "loyalty:mobile:{79001234567}"
        );
        assert_eq!(
            k.index(Index::ContactCard, "C-1"),
            "loyalty:contact-card:{C-1}"
        );
        assert_eq!(k.contact("C-1"), "loyalty:contact:{C-1}");
        assert_eq!(
            slots::slot_of_key(&k.events("4000000000001")),
            slots::slot_of_key(&k.card("4000000000001"))
        );
    }
}
